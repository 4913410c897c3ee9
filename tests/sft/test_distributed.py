"""Fine-tuning under torchrun (2 CPU processes, gloo): rank 0 tokenizes, both ranks train on
their rows of each packed step, and a second command resumes the run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from smelt.training.metrics import read_metrics
from tests.chat.chat_run import REPO

pytestmark = pytest.mark.slow


def _torchrun(args: list[str]) -> subprocess.CompletedProcess:
    command = [
        *(sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"),
        *("-m", "smelt.sft.run", *args),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc


def test_two_ranks_fine_tune_and_resume(base_run, fact_files, tmp_path):
    output = tmp_path / "sft"
    common = [
        *("--base", str(base_run), "--output", str(output), "--val-fraction", "0.2"),
        *(arg for f in fact_files for arg in ("--data", str(f))),
        *("--batch-size", "2", "--seq-len", "128", "--num-threads", "1"),
        *("--checkpoint-every", "3", "--eval-every", "3", "--eval-batches", "1"),
    ]
    first = _torchrun([*common, "--max-steps", "3"])
    assert "trained to step 3" in first.stdout
    assert first.stdout.count("conversations kept") == 1  # printed by rank 0 only
    _torchrun([*common, "--max-steps", "5"])  # a longer run: resumed, not redone
    records = read_metrics(str(output / "metrics.jsonl"))
    assert [r["step"] for r in records] == [1, 2, 3, 4, 5]
    assert records[2]["tokens"] == 3 * 2 * 2 * 128  # steps x ranks x rows x positions
    assert "val_loss" in records[2] and all(r["loss"] > 0 for r in records)
    assert sorted(p.name for p in Path(output).glob("step_*"))[-1] == "step_00000005"
