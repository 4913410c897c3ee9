"""Fine-tuning killed with SIGKILL and run again continues bit for bit: the same per-step losses
as a run never interrupted, without tokenizing the conversations again."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from smelt.training.checkpoint import complete_steps
from smelt.training.metrics import read_metrics
from tests.chat.chat_run import REPO

pytestmark = pytest.mark.slow
STEPS = 40


def _args(base: Path, files: list[Path], output: Path) -> list[str]:
    return [
        *("--base", str(base), "--output", str(output), "--val-fraction", "0.1"),
        *(arg for f in files for arg in ("--data", str(f))),
        *("--max-steps", str(STEPS), "--batch-size", "4", "--seq-len", "128"),
        *("--warmup-steps", "5", "--lr", "3e-3", "--num-threads", "1"),
        *("--checkpoint-every", "10", "--eval-every", "10", "--eval-batches", "2"),
        *("--end-of-turn-weight", "2"),
    ]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def _run(args: list[str]) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-m", "smelt.sft.run", *args],
        cwd=REPO,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc


def _losses(run: Path) -> dict[int, tuple]:
    return {
        r["step"]: (r["loss"], r["lr"], r["tokens"], r.get("val_loss"))
        for r in read_metrics(str(run / "metrics.jsonl"))
    }


def test_sigkill_then_resume_matches_the_uninterrupted_run(base_run, fact_files, tmp_path):
    reference = tmp_path / "reference"
    _run(_args(base_run, fact_files, reference))
    expected = _losses(reference)
    assert sorted(expected) == list(range(1, STEPS + 1))
    assert all(expected[s][3] is not None for s in (10, 20, 30, 40))  # val loss every 10

    resumed = tmp_path / "resumed"
    args = _args(base_run, fact_files, resumed)
    proc = subprocess.Popen(
        [sys.executable, "-m", "smelt.sft.run", *args],
        cwd=REPO,
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    kill_step = random.Random(os.getpid()).randint(13, 33)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            records = read_metrics(str(resumed / "metrics.jsonl"))
            if records and records[-1]["step"] >= kill_step:
                break
            time.sleep(0.02)
        assert proc.poll() is None, f"run ended before the kill: {proc.stderr.read()[-2000:]}"
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert complete_steps(str(resumed)), "a checkpoint was complete before the kill"
    record = resumed / "sft_data" / "conversations.json"
    stamp = record.stat().st_mtime_ns

    done = _run(args)
    assert "trained to step 40" in done.stdout
    assert record.stat().st_mtime_ns == stamp  # the conversations were not tokenized again
    assert _losses(resumed) == expected  # floats compared exactly
