"""Exact resume: a run killed with SIGKILL resumes from its newest complete checkpoint (it says
so, and the steps before it are not trained again) and has the same per-step losses, bit for
bit, as a run that was never interrupted."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from smelt.training.checkpoint import StepLayout, complete_steps, verify_local
from smelt.training.metrics import read_metrics
from tests.training.conftest import REPO, child_env, run_loop, train_args
from tests.training.resumption import assert_resumed

pytestmark = pytest.mark.slow  # training runs in subprocesses, killed and resumed

STEPS = 40


def _losses(run: Path) -> dict[int, tuple[float, float, int]]:
    records = read_metrics(str(run / "metrics.jsonl"))
    steps = [r["step"] for r in records]
    assert steps == sorted(set(steps)), "each step is recorded once, in order"
    return {r["step"]: (r["loss"], r["lr"], r["tokens"]) for r in records}


def _kill_after(run: Path, args: list[str], kill_step: int) -> int:
    """Start training, SIGKILL it once metrics show `kill_step`; returns the last step seen."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "smelt.training.loop", *args],
        cwd=REPO,
        env=child_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    seen = 0
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            records = read_metrics(str(run / "metrics.jsonl"))
            seen = records[-1]["step"] if records else 0
            if seen >= kill_step:
                break
            time.sleep(0.02)
        assert proc.poll() is None, f"run ended before the kill: {proc.stderr.read()[-2000:]}"
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    return seen


def test_sigkill_then_resume_matches_uninterrupted_run(shards: str, tmp_path: Path) -> None:
    reference = tmp_path / "reference"
    run_loop(train_args(shards, str(reference), "--checkpoint-every", "10", steps=STEPS))
    expected = _losses(reference)
    assert sorted(expected) == list(range(1, STEPS + 1))

    resumed = tmp_path / "resumed"
    args = train_args(shards, str(resumed), "--checkpoint-every", "10", steps=STEPS)
    kill_step = random.Random(os.getpid()).randint(13, 32)
    seen = _kill_after(resumed, args, kill_step)
    assert seen < STEPS
    before = complete_steps(str(resumed))
    assert before, "a checkpoint was complete before the kill"
    last_complete = max(before)
    verify_local(StepLayout(before[last_complete]))
    killed = read_metrics(str(resumed / "metrics.jsonl"))

    proc = run_loop([*args, "--debug"])
    assert f"trained to step {STEPS}" in proc.stdout
    got = _losses(resumed)
    assert got == expected  # floats compared exactly
    # it continued from the newest complete checkpoint: steps up to it were not trained again
    assert_resumed(last_complete, proc.stderr, killed, read_metrics(str(resumed / "metrics.jsonl")))
    assert (resumed / f"step_{STEPS:08d}" / "COMPLETE").exists()


def test_resume_extends_run_without_moving_decay(shards: str, tmp_path: Path) -> None:
    """A resumed run with a larger --max-steps keeps the schedule fixed at run start."""
    run = tmp_path / "run"
    run_loop(train_args(shards, str(run), "--checkpoint-every", "10", steps=20))
    first = _losses(run)
    run_loop(train_args(shards, str(run), "--checkpoint-every", "10", steps=30))
    extended = _losses(run)
    assert {s: extended[s] for s in first} == first
    assert sorted(extended) == list(range(1, 31))
    # WSD decays to min_lr at step 20 (the original end); beyond it the lr stays at min_lr
    min_lr = 3e-3 * 0.1
    assert all(abs(extended[s][1] - min_lr) < 1e-12 for s in range(21, 31))


@pytest.mark.slow  # trains until its first checkpoint is written: ~35 s of CPU
def test_sigterm_waits_for_the_checkpoint_writes(shards: str, tmp_path: Path) -> None:
    """SIGTERM ends training at once but lets the queued checkpoint writes finish."""
    run = tmp_path / "run"
    args = train_args(shards, str(run), "--checkpoint-every", "5", steps=400)
    proc = subprocess.Popen(
        [sys.executable, "-m", "smelt.training.loop", *args],
        cwd=REPO,
        env=child_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not complete_steps(str(run)):
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 128 + signal.SIGTERM
    finally:
        if proc.poll() is None:
            proc.kill()
    steps = complete_steps(str(run))
    assert steps and max(steps) < 400
    for step_dir in steps.values():
        verify_local(StepLayout(step_dir))
    assert not [p for p in run.iterdir() if p.name.startswith(".")]  # nothing half-written
