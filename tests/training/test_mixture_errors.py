"""A mixture that cannot be trained is refused before the first step, in one line naming the
source at fault and the fix, and nothing is written."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest

from smelt.errors import ConfigError, InputError
from smelt.training.loop import main, train
from tests.training.conftest import small_config, train_args


def _edited_copy(source: str, target: Path, **manifest_changes) -> str:
    shutil.copytree(source, target)
    manifest = json.loads((target / "manifest.json").read_text())
    (target / "manifest.json").write_text(json.dumps({**manifest, **manifest_changes}))
    return str(target)


def _refused(config, error: type[Exception], message: str, output: Path) -> str:
    with pytest.raises(error, match=message) as caught:
        train(config)
    assert not output.exists(), "a refused run writes nothing"
    assert "\n" not in str(caught.value)
    return str(caught.value)


def test_sources_built_with_another_tokenizer_name_the_odd_one_out(
    mixture_sets: dict[str, str], tmp_path: Path
) -> None:
    odd = _edited_copy(mixture_sets["odd"], tmp_path / "retokenized", tokenizer_sha256="ab" * 32)
    run = tmp_path / "run"
    sources = [mixture_sets["even"], odd, mixture_sets["code"]]
    config = small_config(sources, run)
    message = _refused(config, ConfigError, f"shard set {odd} .* with tokenizer abababababab…", run)
    assert "must share one tokenizer" in message
    # the odd one out is the one that differs from the most, wherever it is listed
    config = small_config([odd, mixture_sets["even"], mixture_sets["code"]], run)
    _refused(config, ConfigError, f"shard set {odd} ", run)


def test_sources_with_another_vocabulary_size_are_refused(
    mixture_sets: dict[str, str], tmp_path: Path
) -> None:
    wide = _edited_copy(mixture_sets["code"], tmp_path / "wide", vocab_size=600)
    run = tmp_path / "run"
    config = small_config([mixture_sets["even"], wide], run)
    _refused(config, ConfigError, f"shard set {wide} .*vocab_size 600 where .* has 512", run)


def test_a_glob_that_matches_no_finished_shard_set(shards: str, tmp_path: Path) -> None:
    (tmp_path / "nights" / "2026-11-01").mkdir(parents=True)  # no manifest: not finished
    run = tmp_path / "run"
    config = small_config([f"{shards}=1", f"{tmp_path}/nights/*=1"], run)
    _refused(config, InputError, r"nights/\* matches no finished shard set", run)


def test_phases_whose_token_counts_do_not_increase(shards: str, tmp_path: Path) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        f"phases:\n"
        f"  - {{until_tokens: 2000, sources: [{shards}]}}\n"
        f"  - {{until_tokens: 1000, sources: [{shards}]}}\n"
    )
    run = tmp_path / "run"
    config = small_config([], run, data=str(plan))
    _refused(config, ConfigError, "ends at 1,000 tokens, not after the previous phase's 2,000", run)


def test_a_phase_longer_than_the_model_can_take(shards: str, tmp_path: Path) -> None:
    plan = tmp_path / "plan.toml"
    plan.write_text(f'[[phases]]\nseq_len = 100000\nsources = ["{shards}"]\n')
    run = tmp_path / "run"
    config = small_config([], run, data=str(plan))
    _refused(config, ConfigError, "phase 'phase 1' has seq_len 100000, more than the model", run)


def test_a_weight_of_zero_is_one_line_on_the_command_line(
    shards: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    run = tmp_path / "run"
    args = train_args(shards, str(run), "--shards", f"{shards}=0", steps=2)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        assert main(args) == 2 and not run.exists()  # the torchrun entry point, in-process
    finally:  # it configures logging for its process: leave the session's as it was
        root.handlers[:] = handlers
        root.setLevel(level)
    err = capsys.readouterr().err
    assert err.startswith("error: --shards") and err.count("\n") == 1
    assert "must be a positive number" in err
