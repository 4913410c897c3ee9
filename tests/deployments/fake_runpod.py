"""A local stand-in for RunPod's REST API (the endpoints `smelt.deployments.runpod_api` uses).

It listens on 127.0.0.1, checks the bearer key, and runs each pod's start command as a local
subprocess with the pod's environment (over a base environment standing in for the image's), so
a test exercises the whole chain: Prefect server, work pool, worker, pod, flow run, termination.
It records every created pod (GPU type, env, command) and every termination; DELETE kills the
pod's process group, and the pod answers 404 from then on, as RunPod does.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

POD_PATH = re.compile(r"^/v1/pods/([A-Za-z0-9_-]+)$")


@dataclass
class FakePod:
    id: str
    request: dict[str, Any]
    process: subprocess.Popen
    log_path: Path
    created_at: float = field(default_factory=time.time)
    terminated_at: float | None = None

    @property
    def env(self) -> dict[str, str]:
        return self.request.get("env") or {}

    @property
    def status(self) -> str:
        if self.terminated_at is not None:
            return "TERMINATED"
        return "RUNNING" if self.process.poll() is None else "EXITED"

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.request.get("name"),
            "imageName": self.request.get("imageName"),
            "desiredStatus": self.status,
            "gpuCount": self.request.get("gpuCount"),
            "gpu": {"id": (self.request.get("gpuTypeIds") or [None])[0]},
            "env": self.env,
            "lastStatusChange": self.created_at,
            "exitCode": self.process.poll(),
        }


class FakeRunPod:
    """The fake API server. `base_url` is what RUNPOD_API_BASE_URL should be set to."""

    def __init__(
        self,
        api_key: str,
        workdir: Path,
        base_env: dict[str, str] | None = None,
        cwd: str | None = None,
    ) -> None:
        self.api_key = api_key
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.base_env = dict(base_env or {})
        self.cwd = cwd or str(self.workdir)
        self.pods: dict[str, FakePod] = {}
        self.terminations: list[str] = []
        self.unauthorized: int = 0
        self.fail_next: list[int] = []  # statuses to answer the next requests with (outages)
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start(self) -> FakeRunPod:
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        for pod in list(self.pods.values()):
            self._kill(pod)
        self._server.shutdown()
        self._server.server_close()

    def live_pods(self) -> list[FakePod]:
        """Pods not terminated (running or exited but still billed)."""
        return [pod for pod in self.pods.values() if pod.terminated_at is None]

    def wait_for(self, predicate, timeout: float, interval: float = 0.2) -> bool:
        """Poll `predicate()` until true or `timeout` seconds pass."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(interval)
        return bool(predicate())

    def pod_log(self, pod: FakePod) -> str:
        return pod.log_path.read_text(errors="replace") if pod.log_path.exists() else ""

    # -- API operations --------------------------------------------------------------------

    def create(self, body: dict[str, Any]) -> FakePod:
        pod_id = uuid.uuid4().hex[:14]
        log_path = self.workdir / f"pod-{pod_id}.log"
        env = {
            **os.environ,
            **self.base_env,
            **{k: str(v) for k, v in (body.get("env") or {}).items()},
        }
        command = body.get("dockerStartCmd") or ["sleep", "infinity"]
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                command,
                env=env,
                cwd=self.cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        pod = FakePod(id=pod_id, request=body, process=process, log_path=log_path)
        with self._lock:
            self.pods[pod_id] = pod
        return pod

    def terminate(self, pod_id: str) -> bool:
        with self._lock:
            pod = self.pods.get(pod_id)
            if pod is None or pod.terminated_at is not None:
                return False
            pod.terminated_at = time.time()
            self.terminations.append(pod_id)
        self._kill(pod)
        return True

    @staticmethod
    def _kill(pod: FakePod) -> None:
        if pod.process.poll() is not None:
            return
        try:
            os.killpg(pod.process.pid, signal.SIGTERM)
            pod.process.wait(timeout=5)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pod.process.pid, signal.SIGKILL)
            pod.process.wait(timeout=5)

    # -- HTTP ------------------------------------------------------------------------------

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return

            def _send(self, status: int, payload: Any = None) -> None:
                data = b"" if payload is None else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _authorized(self) -> bool:
                if fake.fail_next:
                    self._send(fake.fail_next.pop(0), {"error": "injected failure"})
                    return False
                if self.headers.get("Authorization") == f"Bearer {fake.api_key}":
                    return True
                fake.unauthorized += 1
                self._send(401, {"error": "invalid api key"})
                return False

            def do_POST(self) -> None:  # noqa: N802
                if not self._authorized():
                    return
                if self.path != "/v1/pods":
                    self._send(404, {"error": "not found"})
                    return
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                if not body.get("imageName") or not body.get("gpuTypeIds"):
                    self._send(400, {"error": "imageName and gpuTypeIds are required"})
                    return
                self._send(201, fake.create(body).to_json())

            def do_GET(self) -> None:  # noqa: N802
                if not self._authorized():
                    return
                if self.path == "/v1/pods":
                    self._send(200, [pod.to_json() for pod in fake.live_pods()])
                    return
                match = POD_PATH.match(self.path)
                pod = fake.pods.get(match.group(1)) if match else None
                if pod is None or pod.terminated_at is not None:
                    self._send(404, {"error": "pod not found"})
                    return
                self._send(200, pod.to_json())

            def do_DELETE(self) -> None:  # noqa: N802
                if not self._authorized():
                    return
                match = POD_PATH.match(self.path)
                if not match or not fake.terminate(match.group(1)):
                    self._send(404, {"error": "pod not found"})
                    return
                self._send(204)

        return Handler
