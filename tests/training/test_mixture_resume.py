"""Exact resume of a mixture: a run killed with SIGKILL, in the middle of a phase or after it
crossed a phase boundary, resumes from its newest complete checkpoint and then logs the same
losses, tokens per source and phases as a run that was never interrupted."""

from __future__ import annotations

from pathlib import Path

import pytest

from smelt.training.checkpoint import complete_steps
from smelt.training.metrics import read_metrics
from tests.training.conftest import run_loop, train_args
from tests.training.test_resume import _kill_after

STEPS = 40
SAME = ("step", "loss", "lr", "tokens", "source_tokens", "source_epochs", "phase", "phase_name")


def _records(run: Path) -> list[dict]:
    return read_metrics(str(run / "metrics.jsonl"))


def _kill_resume_compare(args_for, tmp_path: Path, kill_step: int, allowed: set[int]) -> list:
    """Reference run; a run killed at `kill_step` or later whose newest complete checkpoint is
    one of `allowed`; that run resumed: the same records, and proof that it resumed."""
    reference = tmp_path / "reference"
    run_loop(args_for(reference))
    expected = [{k: r.get(k) for k in SAME} for r in _records(reference)]
    assert [r["step"] for r in expected] == list(range(1, STEPS + 1))

    killed = tmp_path / "killed"
    seen = _kill_after(killed, args_for(killed), kill_step)
    assert kill_step <= seen < STEPS
    expect_from = max(complete_steps(str(killed)))
    assert expect_from in allowed, f"newest checkpoint {expect_from} when killed at {seen}"
    before = {r["step"]: r for r in _records(killed)}

    proc = run_loop([*args_for(killed), "--debug"])
    assert f"(step {expect_from})" in proc.stderr  # resumed from that checkpoint
    assert f"trained to step {STEPS}" in proc.stdout
    got = _records(killed)
    assert [{k: r.get(k) for k in SAME} for r in got] == expected  # floats compared exactly
    # the steps up to the checkpoint were not trained again: their records, timings included,
    # are the ones the killed process wrote
    assert got[:expect_from] == [before[s] for s in range(1, expect_from + 1)]
    return got


@pytest.mark.slow
def test_kill_mid_phase_then_resume_gives_the_same_mixture(
    mixture_sets: dict[str, str], tmp_path: Path
) -> None:
    sets = mixture_sets
    sources = ["--shards", f"{sets['odd']}=5", "--shards", f"{sets['code']}=2"]

    def args_for(run: Path) -> list[str]:
        every = ("--checkpoint-every", "10")
        return train_args(f"{sets['even']}=3", str(run), *sources, *every, steps=STEPS)

    got = _kill_resume_compare(args_for, tmp_path, kill_step=23, allowed={20, 30})
    shares = got[-1]["source_tokens"]
    assert [
        round(shares[f"{sets[n]}"] / got[-1]["tokens"], 2) for n in ("even", "odd", "code")
    ] == [
        0.3,
        0.5,
        0.2,
    ]


@pytest.mark.slow
def test_kill_after_a_phase_boundary_then_resume_crosses_it_again(
    mixture_sets: dict[str, str], tmp_path: Path
) -> None:
    """Checkpoint at step 20 in phase "prose"; the boundary at 22 steps' tokens; killed in
    phase "code" at step 24 or later; the resumed run crosses the boundary again."""
    sets = mixture_sets
    plan = tmp_path / "plan.yaml"
    step_tokens = 4 * 32
    plan.write_text(
        "phases:\n"
        f"  - name: prose\n    until_tokens: {22 * step_tokens}\n"
        f"    sources: ['{sets['even']}=1', '{sets['odd']}=1']\n"
        "  - name: code\n    seq_len: 64\n"
        f"    sources: ['{sets['code']}=3', '{sets['odd']}=1']\n"
    )

    def args_for(run: Path) -> list[str]:
        base = train_args(sets["even"], str(run), "--checkpoint-every", "20", steps=STEPS)
        index = base.index("--shards")
        return [*base[:index], "--data", str(plan), *base[index + 2 :]]

    got = _kill_resume_compare(args_for, tmp_path, kill_step=24, allowed={20})
    assert [r["phase_name"] for r in got] == ["prose"] * 22 + ["code"] * 18
    assert got[22]["tokens"] - got[21]["tokens"] == 4 * 64  # the phase's own seq_len
