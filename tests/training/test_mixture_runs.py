"""Runs and mixtures: a checkpoint written before mixtures resumes, the `train` flow's artifacts
show the mixture, and the pipeline's train stage mixes other shard sets in."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from smelt.errors import ConfigError
from smelt.storage import sha256_file
from smelt.training.loader import ShardLoader
from smelt.training.loop import train
from smelt.training.metrics import read_metrics
from tests.training.conftest import TINY_MODEL, small_config


def _as_written_before_mixtures(run: Path, shards: str, step: int) -> None:
    """Rewrite a run's record and checkpoint `step` the way smelt wrote them before mixtures:
    `shards` a plain string, the loader state `ShardLoader`'s (its marker kept consistent)."""
    record = json.loads((run / "run.json").read_text())
    record["train_config"]["shards"] = shards
    for name in ("data", "on_exhausted"):
        del record["train_config"][name]
    (run / "run.json").write_text(json.dumps(record))
    step_dir = run / f"step_{step:08d}"
    loader = ShardLoader(shards, batch_size=2, seq_len=16, seed=1337)
    for _ in range(step):
        loader.next_batch()
    ranks = json.loads((step_dir / "ranks.json").read_text())
    assert ranks[0]["loader"]["version"] == 2
    ranks[0]["loader"] = loader.state_dict()
    (step_dir / "ranks.json").write_text(json.dumps(ranks))
    marker = json.loads((step_dir / "COMPLETE").read_text())
    marker["files"]["ranks.json"]["sha256"] = sha256_file(str(step_dir / "ranks.json"))
    (step_dir / "COMPLETE").write_text(json.dumps(marker))


def test_a_run_checkpointed_before_mixtures_resumes_exactly(shards: str, tmp_path: Path) -> None:
    runs = {name: tmp_path / name for name in ("new", "old")}
    for run in runs.values():
        assert train(small_config(shards, run)).step == 4
    _as_written_before_mixtures(runs["old"], shards, step=4)
    losses = {}
    for name, run in runs.items():
        result = train(small_config(shards, run, max_steps=8))
        assert result.resumed_from == 4 and result.step == 8
        losses[name] = [
            (r["loss"], r["source_tokens"]) for r in read_metrics(str(run / "metrics.jsonl"))
        ]
    assert losses["old"] == losses["new"]
    assert losses["old"][-1][1] == {shards: 8 * 2 * 16}


def test_training_stops_where_the_data_plan_ends(shards: str, tmp_path: Path) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text(f"phases:\n  - {{until_tokens: 150, sources: ['{shards}']}}\n")
    run = tmp_path / "run"
    config = small_config([], run, data=str(plan), max_steps=10, checkpoint_every=4)
    result = train(config)  # 2 x 16 tokens a step: the plan ends after step 5 (160 tokens)
    assert (result.step, result.tokens, result.data["finished"]) == (5, 160, True)
    assert [r["step"] for r in read_metrics(str(run / "metrics.jsonl"))] == [1, 2, 3, 4, 5]
    assert sorted(p.name for p in run.glob("step_*")) == ["step_00000004", "step_00000005"]
    again = train(config)
    assert again.already_done and (again.step, again.tokens) == (5, 160)


@pytest.mark.slow
def test_the_train_flow_reports_the_mixture(
    mixture_sets: dict[str, str], tmp_path: Path, prefect_harness
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from smelt.cli.main import main

    even, code = mixture_sets["even"], mixture_sets["code"]
    output = tmp_path / "run"
    args = ["train", "--shards", f"{even}=0.75", "--shards", f"{code}=0.25"]
    args += ["--output", str(output), *TINY_MODEL, "--max-steps", "8", "--batch-size", "4"]
    args += ["--seq-len", "32", "--log-every", "4", "--num-threads", "1", "--no-progress"]
    assert main(args) == 0
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["train-data", "train-loss"]))
        )
    mine = [a for a in artifacts if str(output) in (a.description or "")]
    by_key = {a.key: a for a in mine}
    report = by_key["train-data"].data
    assert f"| `{even}` | {6 * 4 * 32:,} | 75.0% | 0 |" in report
    assert f"| `{code}` | {2 * 4 * 32:,} | 25.0% | 0 |" in report
    assert f"`{even}` 75.0%<br>`{code}` 25.0%" in report
    table = by_key["train-loss"].data
    rows = json.loads(table) if isinstance(table, str) else table
    assert [(r["step"], r["phase"], r[f"share {even}"]) for r in rows] == [
        (4, "phase 1", 0.75),
        (8, "phase 1", 0.75),
    ]


def test_the_pipeline_train_stage_mixes_other_shard_sets_in() -> None:
    from smelt.flows.pipeline import TrainStage

    plain = TrainStage().config("s3://lake/shards", "s3://lake/tokenizer", "s3://lake/runs/r")
    assert plain.shards == ["s3://lake/shards"]
    nights = "s3://lake/shards/nightly/*"
    stage = TrainStage(mix=[f"{nights}=0.3"], shards_weight=0.7)
    config = stage.config("s3://lake/shards", "s3://lake/tokenizer", "s3://lake/runs/r")
    assert config.shards == ["s3://lake/shards=0.7", f"{nights}=0.3"]
    with pytest.raises(ConfigError, match="has no weight while other sources have one"):
        TrainStage(mix=[f"{nights}=0.3"]).config("s3://lake/shards", "t", "r")
