"""The pod image's entrypoint against a real Prefect server: it runs a flow run once, never
again in a restarted container, reports a command that died without a final state, says why
when the API is out of reach, and idles until SIGTERM (so RunPod has nothing to restart)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from smelt.deployments.deploy import PROJECT_DIR
from smelt.deployments.pod_entry import IDLE_MESSAGE
from tests.deployments.conftest import PrefectAPI

pytestmark = pytest.mark.slow

# Stands in for `prefect flow-run execute`: reports RUNNING, records that it ran, then either
# reports COMPLETED or dies with code 3; on SIGTERM it records that too.
ENGINE = """
import signal, sys, time, httpx
api, run_id, marker, outcome = sys.argv[1:5]
def on_term(*_):
    open(marker, "a").write("sigterm\\n"); sys.exit(143)
signal.signal(signal.SIGTERM, on_term)
def set_state(kind):
    httpx.post(f"{api}/flow_runs/{run_id}/set_state", json={"state": {"type": kind}}).raise_for_status()
set_state("RUNNING")
open(marker, "a").write("ran\\n")
if outcome == "complete":
    set_state("COMPLETED")
elif outcome == "die":
    print("boom: the engine died"); sys.exit(3)
else:
    time.sleep(120)
"""


class Entry:
    """`python -m smelt.deployments.pod_entry <engine>` as a pod would run it."""

    def __init__(
        self, api_url: str, flow_run_id: str, command: list[str], home: Path, **env: str
    ) -> None:
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            [sys.executable, "-m", "smelt.deployments.pod_entry", *command],
            env={
                "PATH": os.environ["PATH"],
                "PYTHONPATH": str(PROJECT_DIR.parent),
                "PREFECT_API_URL": api_url,
                "PREFECT__FLOW_RUN_ID": flow_run_id,
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                "HOME": str(home),
                **env,
            },
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line.rstrip())

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_idle(self, timeout: float = 90) -> str:
        deadline = time.monotonic() + timeout
        while IDLE_MESSAGE not in self.output and time.monotonic() < deadline:
            assert self.process.poll() is None, f"the entrypoint exited:\n{self.output}"
            time.sleep(0.2)
        assert IDLE_MESSAGE in self.output, self.output
        return self.output

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=60)


@pytest.fixture
def new_run(prefect_api: PrefectAPI):
    flow = prefect_api.post("/flows/", {"name": "pod-entry-test"})

    def create() -> str:
        run = prefect_api.post("/flow_runs/", {"flow_id": flow["id"], "state": {"type": "PENDING"}})
        return run["id"]

    return create


def _engine(api: PrefectAPI, run_id: str, marker: Path, outcome: str) -> list[str]:
    return [sys.executable, "-c", ENGINE, api.api_url, run_id, str(marker), outcome]


def test_the_flow_run_runs_once_and_a_restarted_container_does_not_run_it_again(
    prefect_api, new_run, tmp_path
):
    run_id, marker = new_run(), tmp_path / "marker"
    first = Entry(
        prefect_api.api_url, run_id, _engine(prefect_api, run_id, marker, "complete"), tmp_path
    )
    first.wait_idle()
    assert prefect_api.state_type(run_id) == "COMPLETED"
    assert first.process.poll() is None  # idle: the container does not exit
    assert first.stop() == 0
    restarted = Entry(
        prefect_api.api_url, run_id, _engine(prefect_api, run_id, marker, "complete"), tmp_path
    )
    output = restarted.wait_idle()
    assert restarted.stop() == 0
    assert marker.read_text() == "ran\n"
    assert "is COMPLETED; nothing to run" in output


def test_a_container_restarted_mid_run_reports_the_run_crashed_instead_of_rerunning(
    prefect_api, new_run, tmp_path
):
    run_id, marker = new_run(), tmp_path / "marker"
    prefect_api.set_state(run_id, "RUNNING")  # the first container started it, then died
    entry = Entry(
        prefect_api.api_url, run_id, _engine(prefect_api, run_id, marker, "complete"), tmp_path
    )
    entry.wait_idle()
    assert entry.stop() == 0
    assert not marker.exists()
    run = prefect_api.flow_run(run_id)
    assert run["state"]["type"] == "CRASHED"
    assert "container restarted" in run["state"]["message"]


def test_a_command_that_dies_without_a_final_state_is_reported_crashed(
    prefect_api, new_run, tmp_path
):
    run_id, marker = new_run(), tmp_path / "marker"
    entry = Entry(
        prefect_api.api_url, run_id, _engine(prefect_api, run_id, marker, "die"), tmp_path
    )
    entry.wait_idle()
    assert entry.stop() == 0
    state = prefect_api.flow_run(run_id)["state"]
    assert state["type"] == "CRASHED"
    assert "exited with code 3" in state["message"] and "boom" in state["message"]


def test_an_unreachable_api_is_named_and_nothing_runs(new_run, prefect_api, tmp_path):
    run_id, marker = new_run(), tmp_path / "marker"
    unreachable = "http://127.0.0.1:9/api"
    entry = Entry(
        unreachable,
        run_id,
        _engine(prefect_api, run_id, marker, "complete"),
        tmp_path,
        SMELT_POD_API_WAIT_S="1",
    )
    output = entry.wait_idle()
    assert entry.stop() == 0
    assert f"cannot reach the Prefect API at {unreachable}" in output
    assert not marker.exists() and prefect_api.state_type(run_id) == "PENDING"


def test_sigterm_reaches_the_running_command(prefect_api, new_run, tmp_path):
    run_id, marker = new_run(), tmp_path / "marker"
    entry = Entry(
        prefect_api.api_url, run_id, _engine(prefect_api, run_id, marker, "hang"), tmp_path
    )
    deadline = time.monotonic() + 90
    while not (marker.exists() and "ran" in marker.read_text()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert entry.stop() == 0
    assert marker.read_text() == "ran\nsigterm\n"
