"""What proves that a run resumed, rather than started over and landed on the same numbers.

A run trained again from step 1 is deterministic: it reproduces every loss, learning rate and
checkpoint of the run it replaced, so equal losses alone cannot tell a resume from a restart.
Two things can:

- the process says which checkpoint it restored (`resumed from ... (step N)`, logged by the
  checkpoint manager; visible with `--debug`);
- the metrics records of steps 1..N are the very records the first process wrote: a record
  carries the throughput measured when its step ran (`tokens_per_s`), which a step trained
  again measures anew.
"""

from __future__ import annotations

import re
from typing import Any

RESUMED = re.compile(r"resumed from \S+ \(step (\d+)\)")


def resumed_steps(log: str) -> list[int]:
    """The checkpoint steps a process (or every rank of one) said it restored."""
    return [int(step) for step in RESUMED.findall(log)]


def assert_resumed(
    step: int,
    log: str,
    before: list[dict[str, Any]],
    after: list[dict[str, Any]],
) -> None:
    """The run restored checkpoint `step` and kept the records of steps 1..`step` untouched."""
    said = resumed_steps(log)
    assert said and set(said) == {step}, f"expected a resume from step {step}, the log says {said}"
    kept = [r for r in before if r["step"] <= step]
    assert [r["step"] for r in kept] == list(range(1, step + 1)), "records before the resume"
    assert all("tokens_per_s" in r for r in kept), "records carry their measured throughput"
    assert [r for r in after if r["step"] <= step] == kept, "steps up to the checkpoint were redone"
