"""The Prefect settings a command's flows run with (`smelt.cli.api.ready`): no flow-run
heartbeats, whose thread makes every flow run wait up to a second as it ends, unless the user
set their frequency. Each case runs in a fresh interpreter: the settings last for a process."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

PROBE = """
from smelt.cli import api
api.ready()
from prefect.settings import get_current_settings
print(get_current_settings().flows.heartbeat_frequency)
"""


def _frequency_after_ready(extra: dict[str, str]) -> str:
    env = {k: v for k, v in os.environ.items() if "HEARTBEAT_FREQUENCY" not in k}
    # an address is given, so ready() starts no server (nothing listens there: none is called)
    env.update({"PREFECT_API_URL": "http://127.0.0.1:9/api", **extra})
    done = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip()


def test_flows_of_a_command_send_no_heartbeats() -> None:
    assert _frequency_after_ready({}) == "None"


@pytest.mark.slow  # two more fresh interpreters
@pytest.mark.parametrize(
    "name", ["PREFECT_FLOWS_HEARTBEAT_FREQUENCY", "PREFECT_RUNNER_HEARTBEAT_FREQUENCY"]
)
def test_a_heartbeat_frequency_the_user_set_is_kept(name: str) -> None:
    assert _frequency_after_ready({name: "60"}) == "60"
