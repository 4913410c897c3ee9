"""The ablation recipe (variants over a base, paths, seeds, clear errors) and the ranked report
(means over seeds, differences from the base and their noise)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from smelt.errors import ConfigError
from smelt.evaluation.ablation import MEAN_ACC_NORM, load_ablation, parse_ablation
from smelt.evaluation.ablation_report import rank_variants, report_markdown, report_plot

RECIPE = """
name: filters
base:
  inputs: [raw]
  overrides: {pii: {enabled: false}, filters: {c4: {enabled: true}}}
variants:
  no-c4:
    overrides: {filters: {c4: {enabled: false}}}
  more:
    inputs: [raw, s3://bucket/extra]
tokenizer: {vocab_size: 1024}
proxy: {preset: test, tokens: 10000, batch_size: 4, seq_len: 32, seeds: 2}
eval:
  tasks: {hellaswag: tasks/hs.jsonl, arc_easy: hub}
"""


def test_variants_change_the_base_and_paths_follow_the_file(tmp_path: Path) -> None:
    path = tmp_path / "ablation.yaml"
    path.write_text(RECIPE)
    config = load_ablation(str(path))
    recipes = config.recipes()
    assert list(recipes) == ["base", "no-c4", "more"]
    assert recipes["base"].inputs == [str(tmp_path / "raw")]
    assert recipes["no-c4"].overrides == {
        "pii": {"enabled": False},
        "filters": {"c4": {"enabled": False}},
    }
    assert recipes["no-c4"].inputs == recipes["base"].inputs
    assert recipes["more"].inputs == [str(tmp_path / "raw"), "s3://bucket/extra"]
    assert config.eval.tasks == {"hellaswag": str(tmp_path / "tasks/hs.jsonl"), "arc_easy": "hub"}
    assert config.proxy.seeds == [0, 1]
    assert config.proxy.max_steps == math.ceil(10000 / (4 * 32))
    assert config.rank_metric() == MEAN_ACC_NORM
    train = config.proxy.train_config("shards", "tok.json", "out", seed=1)
    assert (train.seed, train.max_steps, train.checkpoint_every) == (1, 79, 79)


def test_the_same_recipe_in_toml(tmp_path: Path) -> None:
    path = tmp_path / "ablation.toml"
    path.write_text(
        'name = "t"\n[base]\ninputs = ["raw"]\n[variants.small]\ninputs = ["raw/a"]\n'
        '[eval.texts]\nheld = "held.txt"\n[proxy]\nseeds = [3, 7]\n'
    )
    config = load_ablation(str(path))
    assert config.proxy.seeds == [3, 7]
    assert config.rank_metric() == "held/bits_per_byte"


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"base": {"inputs": []}}, "base.inputs"),
        ({"variants": {"base": {}}}, "'base' is the base recipe's name"),
        ({"variants": {"Bad Name": {}}}, "Bad Name"),
        ({"tokenizer": {"train_on": "nope"}}, "tokenizer.train_on 'nope'"),
        ({"proxy": {"seeds": 0}}, "seeds must be at least 1"),
        ({"proxy": {"tokens": -1}}, "proxy.tokens"),
        ({"eval": {"tasks": {}, "texts": {}, "val_batches": 0}}, "give tasks or texts"),
        ({"typo": 1}, "typo"),
    ],
)
def test_bad_recipes_name_the_field(change: dict, named: str) -> None:
    data = {"base": {"inputs": ["raw"]}, "eval": {"tasks": {"q": "q.jsonl"}}, **change}
    with pytest.raises(ConfigError) as caught:
        parse_ablation(data, "ablation.yaml")
    assert named in str(caught.value) and str(caught.value).startswith("ablation.yaml: ")


def _result(acc_norm: float, stderr: float, bpb: float) -> dict:
    return {
        "step": 10,
        "tokens": 100,
        "tasks": {"q": {"acc": acc_norm, "acc_norm": acc_norm, "n": 100, "layout": "generic",
                        "acc_stderr": stderr, "acc_norm_stderr": stderr}},
        "bits_per_byte": {"held": bpb},
        "val_loss": 3.0,
    }  # fmt: skip


def test_ranking_with_seeds_reports_differences_and_their_noise() -> None:
    results = {
        "base": [_result(0.30, 0.05, 2.0), _result(0.32, 0.05, 2.2)],
        "better": [_result(0.50, 0.05, 1.5), _result(0.52, 0.05, 1.7)],
        "same": [_result(0.29, 0.05, 2.1), _result(0.33, 0.05, 2.1)],
    }
    report = rank_variants(results, "q/acc_norm", [0, 1])
    ranking = {row["variant"]: row for row in report["ranking"]}
    assert [row["variant"] for row in report["ranking"]] == ["better", "base", "same"]
    better = ranking["better"]
    assert better["mean"] == pytest.approx(0.51) and better["diff_vs_base"] == pytest.approx(0.20)
    noise_base = math.sqrt(0.0002) / math.sqrt(2)  # sample std of (0.30, 0.32) / sqrt(2)
    assert better["diff_noise"] == pytest.approx(math.sqrt(2) * noise_base)
    assert better["clear"] and better["better_than_base"]
    assert not ranking["same"]["clear"]
    by_bpb = rank_variants(results, "held/bits_per_byte", [0, 1])  # lower is better
    assert by_bpb["ranking"][0]["variant"] == "better"
    markdown = report_markdown(report, "t")
    assert "| 1 | better |" in markdown and "+0.2000" in markdown
    assert report_plot(report, "t").startswith(b"\x89PNG")


def test_one_seed_uses_the_binomial_standard_error() -> None:
    results = {"base": [_result(0.30, 0.04, 2.0)], "other": [_result(0.40, 0.03, 2.0)]}
    [first, second] = rank_variants(results, "q/acc_norm", [0])["ranking"]
    assert first["variant"] == "other" and first["diff_noise"] == pytest.approx(0.05)
    assert second["std"] is None
    with pytest.raises(ConfigError, match="rank_by 'q/f1'"):
        rank_variants(results, "q/f1", [0])


def test_a_bad_task_file_fails_before_anything_is_built(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from smelt.cli.main import main

    (tmp_path / "quiz.jsonl").write_text('{"context": "a", "choices": ["x", "y"]}\n')
    path = tmp_path / "ablation.yaml"
    path.write_text("base: {inputs: [raw]}\noutput: out\neval: {tasks: {quiz: quiz.jsonl}}\n")
    assert main(["ablate", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert str(tmp_path / "quiz.jsonl") in err and "row 1" in err and "no label" in err
    assert not (tmp_path / "out").exists()
