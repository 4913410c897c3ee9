"""`smelt eval` runs the `evaluate` flow: results JSON per ARCHITECTURE.md, Prefect artifacts, the
comparison across checkpoints, and one-line errors for bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from smelt.cli.main import main

pytestmark = pytest.mark.slow  # smelt eval runs on a trained checkpoint, with flow runs

CONTRACT_KEYS = {"checkpoint", "step", "tokens", "tasks", "bits_per_byte"}


def _eval(*args: str) -> int:
    return main(["eval", "--no-progress", *args])


def _artifacts(keys: list[str], flow_run_id) -> dict:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        ArtifactFilterKey,
    )

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=keys),
                flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]),
            )
        )
    return {a.key: a for a in found}


def _flow_run(output: Path):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=["evaluate"])))
    [run] = [r for r in runs if str(output) in json.dumps(r.parameters, default=str)]
    return run


def test_eval_writes_the_results_json_and_a_table_artifact(
    trained_run: Path, task_files, tmp_path: Path, prefect_harness
) -> None:
    tasks, texts = task_files
    output = tmp_path / "eval.json"
    code = _eval(
        "--checkpoint", str(trained_run),
        "--task", f"hellaswag={tasks['hellaswag']}",
        "--task", f"quiz={tasks['generic_mc']}",
        "--task", f"lambada={tasks['lambada']}",
        "--text", f"pydoc={texts['pydoc']}",
        "--output", str(output),
        "--batch-size", "8",
    )  # fmt: skip
    assert code == 0
    result = json.loads(output.read_text())
    assert set(result) >= CONTRACT_KEYS
    assert (result["checkpoint"], result["step"], result["tokens"]) == (str(trained_run), 60, 7680)
    for name in ("hellaswag", "quiz", "lambada"):
        task = result["tasks"][name]
        assert task["n"] == 24 and 0.0 <= task["acc"] <= 1.0 and 0.0 <= task["acc_norm"] <= 1.0
    assert result["tasks"]["lambada"]["perplexity"] > 1.0
    assert result["bits_per_byte"]["pydoc"] == result["texts"]["pydoc"]["bits_per_byte"] > 0
    assert result["val_loss"] > 0  # on the run's own val shards (run.json names them)
    run = _flow_run(output)
    table = _artifacts(["eval-results"], run.id)["eval-results"].data
    rows = json.loads(table) if isinstance(table, str) else table
    assert {(r["set"], r["metric"]) for r in rows} >= {
        ("hellaswag", "acc"), ("hellaswag", "acc_norm"), ("pydoc", "bits_per_byte"),
        ("val shards", "val_loss"), ("lambada", "perplexity"),
    }  # fmt: skip


def test_all_checkpoints_compares_every_step_and_reuses_results(
    trained_run: Path, task_files, tmp_path: Path, prefect_harness
) -> None:
    tasks, texts = task_files
    output = tmp_path / "cmp" / "eval.json"
    args = [
        "--checkpoint", str(trained_run),
        "--task", f"piqa={tasks['piqa']}",
        "--text", f"pydoc={texts['pydoc']}",
        "--output", str(output),
        "--all-checkpoints",
        "--limit", "8",
    ]  # fmt: skip
    assert _eval(*args) == 0
    csv_lines = (tmp_path / "cmp" / "eval.checkpoints.csv").read_text().splitlines()
    assert csv_lines[0].split(",")[:3] == ["step", "tokens", "val_loss"]
    assert [line.split(",")[0] for line in csv_lines[1:]] == ["30", "60"]
    assert "piqa/acc_norm" in csv_lines[0] and "pydoc/bits_per_byte" in csv_lines[0]
    png = (tmp_path / "cmp" / "eval.checkpoints.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 5000
    newest = json.loads(output.read_text())
    assert newest["step"] == 60 and newest["tasks"]["piqa"]["n"] == 8
    run = _flow_run(output)
    artifacts = _artifacts(["eval-checkpoints", "eval-checkpoints-plot"], run.id)
    assert "| 30 |" in artifacts["eval-checkpoints"].data
    assert "data:image/png;base64," in artifacts["eval-checkpoints"].data
    steps = sorted((tmp_path / "cmp" / "eval.steps").iterdir())
    before = [p.stat().st_mtime_ns for p in steps]
    assert _eval(*args) == 0  # nothing changed: the stored results are reused
    assert [p.stat().st_mtime_ns for p in steps] == before


def test_bad_task_file_is_one_line_naming_file_and_row(
    trained_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture, prefect_harness
) -> None:
    bad = tmp_path / "quiz.jsonl"
    bad.write_text('{"context": "a", "choices": ["x", "y"], "label": 0}\n{"context": "b"}\n')
    code = _eval("--checkpoint", str(trained_run), "--task", f"quiz={bad}", "--output",
                 str(tmp_path / "out.json"))  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error: ") and "\n" not in err
    assert str(bad) in err and "row 2" in err
    assert not (tmp_path / "out.json").exists()
    assert _eval("--checkpoint", str(trained_run), "--task", "quiz", "--output", "x.json") == 2
    assert "expected NAME=URI" in capsys.readouterr().err


def _other_tokenizer(path: Path, vocab: int) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab,
        special_tokens=["<|endoftext|>", "<pad>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator([f"line {i} of some other text" for i in range(3000)], trainer)
    tokenizer.save(str(path))


def test_a_checkpoint_with_another_tokenizer_is_refused(
    trained_run: Path, task_files, tmp_path: Path, capsys: pytest.CaptureFixture, prefect_harness
) -> None:
    tasks, _ = task_files
    copy = tmp_path / "run"
    shutil.copytree(trained_run, copy)
    _other_tokenizer(copy / "tokenizer.json", vocab=700)  # more tokens than the model has
    code = _eval("--checkpoint", str(copy), "--task", f"quiz={tasks['generic_mc']}",
                 "--output", str(tmp_path / "out.json"))  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "is not the tokenizer checkpoint" in err and "tokenizer.json" in err


def test_val_shards_of_another_tokenizer_are_refused(
    trained_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture, prefect_harness
) -> None:
    from tests.training.conftest import write_shards

    other = tmp_path / "other-shards"
    other.mkdir()
    _other_tokenizer(other / "tokenizer.json", vocab=400)
    write_shards(other, other / "tokenizer.json")
    code = _eval("--checkpoint", str(trained_run), "--val-shards", str(other),
                 "--output", str(tmp_path / "out.json"))  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "another tokenizer than the shards" in err and str(other) in err


def test_results_go_to_s3(trained_run: Path, task_files, s3_bucket: str, prefect_harness) -> None:
    from smelt import storage

    tasks, _ = task_files
    output = f"{s3_bucket}/eval/run.json"
    code = _eval("--checkpoint", str(trained_run), "--task", f"piqa={tasks['piqa']}",
                 "--limit", "4", "--val-batches", "0", "--output", output)  # fmt: skip
    assert code == 0
    result = json.loads(storage.read_text(output))
    assert result["tasks"]["piqa"]["n"] == 4 and result["val_loss"] is None
