"""Which Prefect API a `smelt` command reports its flow runs to, found or started once.

In order of preference:

1. `PREFECT_API_URL`, when the user set it (Prefect Cloud, a team server);
2. the local `smelt server`, when one is running: it leaves `smelt-server.json` in
   `PREFECT_HOME` while it serves, so every command's runs land in the UI at no start-up cost;
3. a private server for this command alone (what Prefect calls ephemeral mode, SQLite under
   `PREFECT_HOME`, so `make ui` shows the runs afterwards). smelt starts it itself, once per
   command, in the background while the command gets ready, in its own session (a Ctrl-C sent
   to the terminal's process group reaches the command, which then stops cleanly, not the
   server under it) and tied to the command's life (it receives SIGTERM when the command
   dies, even by SIGKILL), so it never outlives the command.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from smelt.errors import SmeltError

RECORD_NAME = "smelt-server.json"
HEALTH_TIMEOUT_S = 0.5
START_TIMEOUT_S = float(os.environ.get("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", 180))
_PR_SET_PDEATHSIG = 1


def prefect_home() -> Path:
    return Path(os.environ.get("PREFECT_HOME") or Path.home() / ".prefect").expanduser()


def record_path(home: Path | None = None) -> Path:
    """Where a running `smelt server` announces its API URL."""
    return (home or prefect_home()) / RECORD_NAME


def announce_server(api_url: str, home: Path) -> None:
    """Called by `smelt server` once it serves: later commands find it here."""
    path = record_path(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"api_url": api_url, "pid": os.getpid()}))


def withdraw_server(home: Path) -> None:
    """Called by `smelt server` when it stops."""
    with contextlib.suppress(FileNotFoundError):
        record_path(home).unlink()


def healthy(api_url: str, timeout: float = HEALTH_TIMEOUT_S) -> bool:
    try:
        return httpx.get(f"{api_url}/health", timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def running_smelt_server() -> str | None:
    """The API URL of a live local `smelt server`, or None."""
    try:
        record = json.loads(record_path().read_text())
        os.kill(int(record["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return record["api_url"] if healthy(record["api_url"]) else None


class PrivateServer:
    """A Prefect API server for one command, started in the background (see module doc)."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.api_url = f"http://127.0.0.1:{self.port}/api"
        self.process: subprocess.Popen[bytes] | None = None
        self.error: str | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(
            target=self._wait_healthy, name="prefect-server", daemon=True
        )

    def start(self) -> PrivateServer:
        """Launch the server process (from this thread: the parent-death signal is tied to
        the launching thread) and wait for its health in the background."""
        env = {
            **os.environ,
            "PREFECT_UI_ENABLED": "0",
            "PREFECT__SERVER_EPHEMERAL": "1",
            "PREFECT__SERVER_FINAL": "1",
        }
        env.pop("PREFECT_API_URL", None)
        command = [
            sys.executable, "-m", "uvicorn",
            "--app-dir", _site_packages_of("prefect"),
            "--factory", "prefect.server.api.server:create_app",
            "--host", "127.0.0.1", "--port", str(self.port),
            "--log-level", "error", "--lifespan", "on",
        ]  # fmt: skip
        try:
            self.process = subprocess.Popen(
                command, env=env, start_new_session=True, preexec_fn=_die_with_parent
            )
        except OSError as exc:
            self.error = str(exc)
            self._ready.set()
            return self
        atexit.register(self.stop)
        self._thread.start()
        return self

    def wait(self) -> str:
        """Block until the server answers; its API URL."""
        self._ready.wait()
        if self.error:
            raise SmeltError(f"could not start a Prefect server: {self.error}")
        return self.api_url

    def _wait_healthy(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        try:
            while not healthy(self.api_url, timeout=1.0):
                if self.process.poll() is not None:
                    self.error = f"it exited with code {self.process.returncode}"
                    return
                if time.monotonic() > deadline:
                    self.error = f"no answer within {START_TIMEOUT_S:.0f} s"
                    return
                time.sleep(0.05)
        finally:
            self._ready.set()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


_server: PrivateServer | None = None


def prepare() -> None:
    """Find the API to use, or start a private server in the background; returns at once.

    Call it before Prefect is imported: `PREFECT_API_URL` is set here, at once (the private
    server's port is chosen before it starts), because Prefect reads its settings when it is
    imported, and one that finds no API URL starts an ephemeral server of its own, in the
    command's process group, where a Ctrl-C kills it under the command.
    """
    global _server
    if os.environ.get("PREFECT_API_URL") or _server is not None or _configured_in_prefect():
        return
    found = running_smelt_server()
    if found:
        os.environ["PREFECT_API_URL"] = found
        return
    _server = PrivateServer().start()
    os.environ["PREFECT_API_URL"] = _server.api_url


def ready() -> None:
    """Wait until the API that `prepare` chose answers (call before the first flow run)."""
    if _server is None and not os.environ.get("PREFECT_API_URL"):
        prepare()
    if _server is not None:
        _server.wait()
    _no_flow_heartbeats()


HEARTBEAT_VARIABLES = ("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", "PREFECT_RUNNER_HEARTBEAT_FREQUENCY")
_settings = contextlib.ExitStack()  # settings for the flows this process runs, kept to its end
_heartbeats_off = False


def _no_flow_heartbeats() -> None:
    """Flows a command runs in its own process send no heartbeats, unless the user set their
    frequency. Prefect's heartbeat thread sleeps in whole seconds and every flow run waits for
    it as it ends: up to a second per command (11% of a 9 s corpus build, BENCHMARKS.md). A
    command's Ctrl-C and SIGTERM end its runs themselves (`smelt.cli.stopping`); runs started
    by a deployment (a worker, a RunPod pod) keep Prefect's heartbeats."""
    global _heartbeats_off
    if _heartbeats_off or any(name in os.environ for name in HEARTBEAT_VARIABLES):
        return
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    _settings.enter_context(temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}))
    _heartbeats_off = True


def stop() -> None:
    """Stop this command's private server now (it also stops by itself when the command
    exits, however it exits)."""
    if _server is not None:
        _server.stop()


def _configured_in_prefect() -> bool:
    """Whether Prefect, already imported, has an API URL of its own (a test harness, a
    profile): then that is the API, and no server is started here."""
    if "prefect.settings" not in sys.modules:
        return False
    from prefect.settings import get_current_settings

    return bool(get_current_settings().api.url)


def _site_packages_of(package: str) -> str:
    """The directory holding `package`, found without importing it (that takes a second)."""
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise SmeltError(f"{package} is not installed")
    return str(Path(spec.origin).parent.parent)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _die_with_parent() -> None:
    """In the child: receive SIGTERM when the command's process dies, however it dies."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
