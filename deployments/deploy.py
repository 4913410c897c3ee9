"""Helpers to run smelt's deployments locally: a Prefect server as a subprocess, the work pools,
`prefect deploy --all` of prefect.yaml, and a worker of the `process` pool, so scheduled runs
and runs started from the UI execute. `smelt server` and the tests use the same code.

The server keeps its SQLite database under PREFECT_HOME. A server that stops must get SIGINT
(uvicorn's graceful path) after every worker attached to it has stopped: a worker that loses its
server mid-shutdown can hang. So both run in sessions of their own (a Ctrl-C in the terminal
reaches only the process that started them, which stops the worker first, then the server).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from smelt.errors import ConfigError, SmeltError

logger = logging.getLogger(__name__)

PROJECT_DIR = Path(__file__).resolve().parent.parent
WORK_POOLS: dict[str, str] = {"process": "process", "runpod": "runpod"}  # name -> worker type


def free_port(host: str = "127.0.0.1") -> int:
    """An unused TCP port on `host`."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def prefect_bin() -> str:
    """The `prefect` executable of this interpreter's environment."""
    candidate = Path(sys.executable).parent / "prefect"
    return str(candidate) if candidate.exists() else "prefect"


def server_env(
    api_url: str, prefect_home: str | Path | None = None, extra: dict[str, str] | None = None
) -> dict[str, str]:
    """The environment for a process talking to (or being) the server at `api_url`."""
    env = {
        **os.environ,
        "PREFECT_API_URL": api_url,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS": "",
    }
    if prefect_home is not None:
        env["PREFECT_HOME"] = str(prefect_home)
    env.update(extra or {})
    return env


@dataclass
class PrefectServer:
    """A `prefect server start` subprocess and its URLs."""

    host: str
    port: int
    prefect_home: Path
    process: subprocess.Popen | None = None
    log_path: Path | None = None
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def ui_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.ui_url}/api"

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        """Variables a client process (CLI, worker) needs to use this server."""
        return server_env(self.api_url, self.prefect_home, {**self.extra_env, **(extra or {})})

    def start(self, timeout_s: float = 120.0, stream_output: bool = False) -> PrefectServer:
        """Start the server and wait until its health endpoint answers."""
        self.prefect_home.mkdir(parents=True, exist_ok=True)
        env = self.env({"PREFECT_UI_API_URL": self.api_url})
        env.pop("PREFECT_API_URL")  # the server itself must not talk to another one
        command = [prefect_bin(), "server", "start", "--host", self.host, "--port", str(self.port)]
        if stream_output:
            self.process = subprocess.Popen(command, env=env, start_new_session=True)
        else:
            self.log_path = self.prefect_home / "server.log"
            with open(self.log_path, "ab") as log:
                self.process = subprocess.Popen(
                    command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
                )
        wait_healthy(self.api_url, timeout_s, self.process, self.log_path)
        return self

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGINT (graceful), then SIGKILL if it does not exit in time."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


@dataclass
class PoolWorker:
    """A `prefect worker start` subprocess polling one pool, its output in `log_path`.

    Stop it before the server it polls (`stop` sends SIGINT, Prefect's graceful path, and
    waits): a worker that loses its server while shutting down can hang.
    """

    pool: str
    log_path: Path
    worker_type: str = "process"
    name: str | None = None
    process: subprocess.Popen | None = None

    def start(self, env: dict[str, str]) -> PoolWorker:
        command = [
            prefect_bin(),
            "worker",
            "start",
            "--pool",
            self.pool,
            "--type",
            self.worker_type,
        ]
        command += ["--name", self.name] if self.name else []
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        return self

    def wait_polling(self, api_url: str, timeout_s: float = 120.0) -> None:
        """Block until the pool lists this worker (its first poll): deployments are Ready."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                tail = self.log_path.read_text(errors="replace")[-2000:]
                raise SmeltError(
                    f"the {self.pool} worker exited ({self.process.returncode}): {tail}"
                )
            if self.name in pool_workers(api_url, self.pool):
                return
            time.sleep(0.5)
        raise SmeltError(f"the {self.pool} worker did not poll {api_url} within {timeout_s:.0f}s")

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGINT, wait; SIGKILL if it does not exit in time."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            logger.warning("the %s worker did not stop in %.0fs: killed", self.pool, timeout_s)
            self.process.kill()
            self.process.wait(timeout=10)


def pool_workers(api_url: str, pool: str) -> list[str]:
    """Names of the workers that have polled `pool` (an unknown pool has none)."""
    try:
        response = httpx.post(f"{api_url}/work_pools/{pool}/workers/filter", json={}, timeout=5)
    except httpx.HTTPError:
        return []
    return [row["name"] for row in response.json()] if response.status_code == 200 else []


def wait_healthy(
    api_url: str,
    timeout_s: float,
    process: subprocess.Popen | None = None,
    log_path: Path | None = None,
) -> None:
    """Block until `GET {api_url}/health` answers 200; fail early if the process exits."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            tail = log_path.read_text(errors="replace")[-2000:] if log_path else ""
            raise SmeltError(f"Prefect server exited with code {process.returncode}: {tail}")
        try:
            if httpx.get(f"{api_url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SmeltError(f"Prefect server at {api_url} not healthy after {timeout_s:.0f}s")


def ensure_work_pools(api_url: str, pools: dict[str, str] | None = None) -> list[str]:
    """Create the work pools that are missing, each with its worker type's default base job
    template (what `prefect work-pool create NAME --type TYPE` does, without a CLI start per
    pool); returns the names created."""
    from prefect.workers.base import BaseWorker

    created = []
    with httpx.Client(base_url=api_url, timeout=30) as http:
        for name, pool_type in (pools or WORK_POOLS).items():
            if http.get(f"/work_pools/{name}").status_code == 200:
                continue
            worker_class = BaseWorker.get_worker_class_from_type(pool_type)
            if worker_class is None:
                raise ConfigError(f"no worker type {pool_type!r} installed for pool {name!r}")
            template = worker_class.get_default_base_job_template()
            response = http.post(
                "/work_pools/",
                json={"name": name, "type": pool_type, "base_job_template": template},
            )
            if response.status_code == 409:  # created meanwhile
                continue
            if response.status_code >= 400:
                raise SmeltError(
                    f"could not create work pool {name!r} ({pool_type}): "
                    f"{response.status_code} {response.text[:500]}"
                )
            created.append(name)
    return created


def deploy_all(
    env: dict[str, str],
    project_dir: Path = PROJECT_DIR,
    names: list[str] | None = None,
    prefect_file: str = "prefect.yaml",
) -> subprocess.CompletedProcess:
    """`prefect --no-prompt deploy --all` (or `-n NAME` for each of `names`) in `project_dir`,
    whose `prefect_file` declares the deployments. Raises with the CLI's output on failure."""
    if not (project_dir / prefect_file).exists():
        raise ConfigError(f"no {prefect_file} in {project_dir}: run from the smelt project")
    command = [prefect_bin(), "--no-prompt", "deploy", "--prefect-file", prefect_file]
    command += [arg for name in names for arg in ("-n", name)] if names else ["--all"]
    result = subprocess.run(command, cwd=project_dir, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise SmeltError(
            f"`{' '.join(command[1:])}` failed in {project_dir}: "
            f"{(result.stdout + result.stderr)[-3000:]}"
        )
    return result
