"""`smelt train` runs the `train` flow (artifacts included); `smelt generate` streams from the run;
`smelt export-hf` writes a folder that transformers loads and that computes the same logits."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from smelt.cli.main import main
from smelt.model.checkpoint_io import load_model
from smelt.training.metrics import read_metrics
from tests.training.conftest import TINY_MODEL


def _train_args(shards: str, output: Path) -> list[str]:
    return [
        "train",
        "--shards",
        shards,
        "--output",
        str(output),
        *TINY_MODEL,
        "--max-steps",
        "12",
        "--batch-size",
        "4",
        "--seq-len",
        "32",
        "--checkpoint-every",
        "6",
        "--eval-every",
        "6",
        "--eval-batches",
        "2",
        "--num-threads",
        "1",
        "--log-every",
        "3",
    ]


@pytest.fixture(scope="module")
def trained_run(shards: str, tmp_path_factory: pytest.TempPathFactory, prefect_harness) -> Path:
    output = tmp_path_factory.mktemp("cli") / "run"
    assert main(_train_args(shards, output)) == 0
    return output


def test_train_cli_runs_the_flow_with_artifacts(trained_run: Path) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        ArtifactFilterKey,
        FlowFilter,
        FlowFilterName,
    )

    records = read_metrics(str(trained_run / "metrics.jsonl"))
    assert [r["step"] for r in records] == list(range(1, 13))
    assert {"step", "loss", "lr", "tokens", "tokens_per_s"} <= set(records[0])
    assert "val_loss" in records[5] and "val_loss" in records[11]
    assert list((trained_run / "tb").iterdir()), "TensorBoard event files"
    with get_client(sync_client=True) as client:
        # other tests of the session train too: take the artifacts of this output's run
        runs = client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=["train"])))
        [run] = [r for r in runs if str(trained_run) in json.dumps(r.parameters, default=str)]
        keys = ArtifactFilterKey(any_=["train-loss", "train-progress"])
        this_run = ArtifactFilterFlowRunId(any_=[run.id])
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=keys, flow_run_id=this_run)
        )
    by_key = {a.key: a for a in artifacts}
    assert set(by_key) == {"train-loss", "train-progress"}
    table = by_key["train-loss"].data
    rows = json.loads(table) if isinstance(table, str) else table
    assert [row["step"] for row in rows] == [3, 6, 9, 12]
    assert by_key["train-progress"].data == pytest.approx(100.0)


def test_train_again_says_the_run_is_finished_with_its_real_progress(
    shards: str, trained_run: Path, capsys: pytest.CaptureFixture
) -> None:
    capsys.readouterr()
    assert main([*_train_args(shards, trained_run), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert f"{trained_run} is already trained to step 12 ({12 * 4 * 32:,} tokens)" in out


def test_generate_streams_text_from_a_run_or_one_of_its_steps(
    trained_run: Path, capsys: pytest.CaptureFixture
) -> None:
    args = [
        "generate",
        "--checkpoint",
        str(trained_run),
        "--prompt",
        "The",
        "--temperature",
        "0",
        "--max-new-tokens",
        "12",
    ]
    assert main(args) == 0
    newest = capsys.readouterr().out
    assert newest.startswith("The") and len(newest.strip()) > len("The")

    def sample(checkpoint: Path) -> str:
        """Seeded sampling of 200 tokens: the text follows the checkpoint's probabilities (the
        greedy text of this barely trained model is its first token, repeated, at any step;
        steps 6 and 12 differ by ~2% of probability mass per token)."""
        sampling = ["--temperature", "1", "--seed", "0", "--max-new-tokens", "200"]
        assert main([*args[:2], str(checkpoint), *args[3:5], *sampling]) == 0
        return capsys.readouterr().out

    run_sample = sample(trained_run)
    assert sample(trained_run / "step_00000012") == run_sample  # the newest is step 12
    assert sample(trained_run / "step_00000006") != run_sample  # a step is that checkpoint


def test_export_hf_loads_in_transformers_with_same_logits(
    trained_run: Path, tmp_path: Path
) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = tmp_path / "hf"
    assert main(["export-hf", "--checkpoint", str(trained_run), "--output", str(folder)]) == 0
    hf_model = AutoModelForCausalLM.from_pretrained(str(folder)).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    ids = torch.tensor([tokenizer("def main(): return 42")["input_ids"]])
    ours = load_model(os.path.join(trained_run, "step_00000012", "model.safetensors")).eval()
    with torch.no_grad():
        expected = ours.logits(ids)
        got = hf_model(ids).logits
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)


def test_generate_without_a_checkpoint_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert main(["generate", "--checkpoint", str(tmp_path), "--prompt", "x"]) == 2
    assert "no complete checkpoint" in capsys.readouterr().err
