"""`smelt server` starts a worker of the `process` pool by default: a scheduled run executes
without a second terminal, the deployments are Ready, and Ctrl-C stops the worker, then the
server. Each test runs the real command in a subprocess on a fresh PREFECT_HOME."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from smelt.deployments.deploy import free_port, pool_workers, server_env
from tests.deployments.conftest import PrefectAPI

pytestmark = pytest.mark.slow

PROBE = '''"""A flow that leaves a file behind, named as smelt names a nightly output: `{date}` is
the UTC date of the run's scheduled start. It waits `seconds` first, so that two runs overlap."""

import time
from pathlib import Path

from prefect import flow

from smelt.corpus.targets import expand_output
from smelt.flows.corpus_build import build_date


@flow(name="scheduled-probe")
def scheduled_probe(marker: str, seconds: float = 0) -> str:
    time.sleep(seconds)
    path = expand_output(marker, build_date())
    Path(path).write_text("ran")
    return path
'''

PREFECT_YAML = """name: server-worker-test
prefect-version: 3.8.8
deployments:
  - name: every-minute
    entrypoint: probe.py:scheduled_probe
    work_pool:
      name: process
    schedules:
      - cron: "* * * * *"
    parameters:
      marker: {marker}
  - name: one-at-a-time
    entrypoint: probe.py:scheduled_probe
    work_pool:
      name: process
    concurrency_limit:
      limit: 1
      collision_strategy: CANCEL_NEW
    parameters:
      marker: {marker}
      seconds: 20
"""


class SmeltServer:
    """`smelt server ARGS` in a subprocess, its output collected line by line."""

    def __init__(self, tmp_path: Path, *args: str) -> None:
        self.port = free_port()
        self.api_url = f"http://127.0.0.1:{self.port}/api"
        env = server_env(self.api_url, tmp_path / "home")
        env.pop("PREFECT_API_URL")
        env["PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS"] = "5"  # runs appear within 5 s
        env["PREFECT_WORKER_QUERY_SECONDS"] = "2"
        smelt = Path(sys.executable).parent / "smelt"
        command = [str(smelt), "server", "--port", str(self.port), "--home", str(tmp_path / "home")]
        self.process = subprocess.Popen(
            [*command, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_for(self, text: str, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output:
            assert self.process.poll() is None, f"smelt server exited:\n{self.output}"
            assert time.monotonic() < deadline, f"no {text!r} within {timeout}s:\n{self.output}"
            time.sleep(0.5)

    def interrupt(self) -> int:
        self.process.send_signal(signal.SIGINT)
        code = self.process.wait(timeout=120)
        self._reader.join(timeout=10)
        return code

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def _one_of_two_overlapping_runs_is_cancelled(api: PrefectAPI) -> bool:
    """Two runs of a deployment limited to one at a time (`CANCEL_NEW`, as `nightly-build`
    is): the second, started while the first runs, ends Cancelled; the first completes."""
    name = "scheduled-probe/one-at-a-time"
    first = api.run_deployment(name, {})
    deadline = time.monotonic() + 120
    while api.state_type(first["id"]) != "RUNNING":
        assert time.monotonic() < deadline, "the first run never started"
        time.sleep(1)
    second = api.run_deployment(name, {})
    final = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
    states: dict[str, str] = {}
    while time.monotonic() < deadline and len(states) < 2:
        for run in (first, second):
            state = api.state_type(run["id"])
            if state in final:
                states[run["id"]] = state
        time.sleep(1)
    return states == {first["id"]: "COMPLETED", second["id"]: "CANCELLED"}


def test_a_scheduled_run_executes_through_the_worker_smelt_server_starts(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    marker = tmp_path / "probe-ran-{date}.txt"
    (project / "probe.py").write_text(PROBE)
    (project / "prefect.yaml").write_text(PREFECT_YAML.format(marker=marker))
    server = SmeltServer(tmp_path, "--project-dir", str(project))
    try:
        server.wait_for("Press Ctrl-C")
        assert "Worker:     process pool" in server.output, server.output
        worker_pid = int(re.search(r"Worker: .*\(pid (\d+)\)", server.output).group(1))
        assert pool_workers(server.api_url, "process") == ["smelt-server"]
        api = PrefectAPI(server.api_url)
        deployment = api.deployment("scheduled-probe/every-minute")
        assert deployment["status"] == "READY"  # a worker polls its pool: not "Not Ready"

        query = {
            "deployments": {"id": {"any_": [deployment["id"]]}},
            "flow_runs": {"state": {"type": {"any_": ["COMPLETED"]}}},
            "limit": 5,
        }
        deadline, done = time.monotonic() + 240, []
        while time.monotonic() < deadline and not done:
            done = api.post("/flow_runs/filter", query)
            time.sleep(2)
        log = (tmp_path / "home" / "worker-process.log").read_text()
        assert done, f"no scheduled run completed within 240 s\n{server.output}\n{log[-3000:]}"
        assert done[0]["auto_scheduled"] is True
        scheduled = datetime.fromisoformat(done[0]["expected_start_time"]).astimezone(UTC)
        night = tmp_path / f"probe-ran-{scheduled:%Y-%m-%d}.txt"  # {date}: the scheduled day
        assert night.read_text() == "ran"
        assert _one_of_two_overlapping_runs_is_cancelled(api), log[-3000:]

        assert server.interrupt() == 0, server.output
    finally:
        server.kill()
    output = server.output
    assert output.index("Stopping the process worker") < output.index("Stopping the Prefect server")
    assert not _alive(worker_pid)
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{server.api_url}/health", timeout=2)
