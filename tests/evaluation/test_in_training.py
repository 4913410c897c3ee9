"""`smelt train --eval-task NAME=URI`: the tasks are scored every --eval-every steps and land in
metrics.jsonl and TensorBoard, with the same scores `smelt eval` gives."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from smelt.cli.main import main
from smelt.training.metrics import read_metrics
from tests.training.conftest import TINY_MODEL


def _train_args(shards: str, output: Path, quiz: Path, steps: int = 12) -> list[str]:
    return [
        "train",
        "--shards", shards,
        "--output", str(output),
        *TINY_MODEL,
        "--model-override", "max_seq_len=64",
        "--max-steps", str(steps),
        "--batch-size", "4",
        "--seq-len", "32",
        "--checkpoint-every", "6",
        "--eval-every", "6",
        "--eval-batches", "2",
        "--num-threads", "1",
        "--no-progress",
        "--eval-task", f"quiz={quiz}",
    ]  # fmt: skip


def test_train_logs_task_scores_every_eval_step(
    eval_shards: str, task_files, tmp_path: Path, prefect_harness
) -> None:
    tasks, _ = task_files
    output = tmp_path / "run"
    assert main(_train_args(eval_shards, output, tasks["generic_mc"])) == 0
    records = read_metrics(str(output / "metrics.jsonl"))
    scored = {r["step"]: r for r in records if "eval/quiz/acc" in r}
    assert sorted(scored) == [6, 12]
    assert all(0.0 <= r["eval/quiz/acc_norm"] <= 1.0 for r in scored.values())
    assert "val_loss" in scored[6]

    # the same scores as `smelt eval` on the checkpoint of that step
    result = tmp_path / "eval.json"
    assert main(["eval", "--no-progress", "--checkpoint", str(output / "step_00000012"),
                 "--task", f"quiz={tasks['generic_mc']}", "--output", str(result)]) == 0  # fmt: skip
    evaluated = json.loads(result.read_text())["tasks"]["quiz"]
    assert scored[12]["eval/quiz/acc"] == pytest.approx(evaluated["acc"])
    assert scored[12]["eval/quiz/acc_norm"] == pytest.approx(evaluated["acc_norm"])

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(output / "tb"))
    events.Reload()
    assert "eval/quiz/acc_norm" in events.Tags()["scalars"]
    assert [e.step for e in events.Scalars("eval/quiz/acc")] == [6, 12]


def test_a_bad_eval_task_fails_before_training(
    eval_shards: str, tmp_path: Path, capsys: pytest.CaptureFixture, prefect_harness
) -> None:
    bad = tmp_path / "quiz.jsonl"
    bad.write_text('{"context": "a", "choices": ["x"], "label": 0}\n')
    output = tmp_path / "run"
    assert main(_train_args(eval_shards, output, bad)) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "row 1" in err and "at least 2" in err
    assert not list(output.glob("step_*"))


def test_the_bare_loop_refuses_eval_tasks_it_cannot_score(eval_shards: str, tmp_path: Path) -> None:
    from smelt.errors import ConfigError
    from smelt.training.config import TrainConfig
    from smelt.training.loop import train

    config = TrainConfig(
        shards=eval_shards, output=str(tmp_path / "run"), eval_tasks={"quiz": "q.jsonl"}
    )
    with pytest.raises(ConfigError, match="--eval-task needs `smelt train`"):
        train(config)
