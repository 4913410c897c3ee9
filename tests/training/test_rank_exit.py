"""A torchrun rank leaves without interpreter finalization (which can deadlock on a thread
torch left behind), yet with its exit code, its output and its logs intact."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

RANK_SCRIPT = """
import atexit, logging, sys, threading
from smelt.training.distributed import exit_code

code, stuck = int(sys.argv[1]), sys.argv[2] == "stuck"
logging.basicConfig(stream=sys.stderr, format="%(message)s")
atexit.register(lambda: print(" finalized", end=""))
if stuck:  # a non-daemon thread that never ends: finalization would wait for it forever
    threading.Thread(target=threading.Event().wait).start()
print("trained to step 5", end="")  # still in the buffer of a piped stdout
logging.getLogger("rank").warning("checkpoint written")
sys.exit(exit_code(code))
"""


def _rank(code: int, world_size: int, stuck: bool) -> subprocess.CompletedProcess:
    env = {**os.environ, "RANK": "0", "WORLD_SIZE": str(world_size)}
    env.pop("PYTHONUNBUFFERED", None)
    command = [sys.executable, "-c", RANK_SCRIPT, str(code), "stuck" if stuck else "-"]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("code", [0, 2])
def test_a_rank_of_many_exits_with_its_code_and_output_despite_a_stuck_thread(code):
    proc = _rank(code, world_size=2, stuck=True)
    assert proc.returncode == code
    assert proc.stdout == "trained to step 5"  # flushed, and no finalization ran
    assert "checkpoint written" in proc.stderr


def test_a_single_process_finalizes_as_usual():
    proc = _rank(3, world_size=1, stuck=False)
    assert proc.returncode == 3
    assert proc.stdout == "trained to step 5 finalized"
