"""A local stand-in for RunPod's REST API v2, behaving as its OpenAPI spec and its known habits
say, so that a test exercises the whole chain: Prefect server, work pool, worker, pod, flow run,
termination.

What it does like RunPod:

- v2 shapes: `POST /v2/pods` takes a CreatePodRequest and answers 201 with a Pod;
  `GET /v2/pods` answers `{"pods": [...]}`; pods report `status` (PROVISIONING -> STARTING ->
  RUNNING, EXITED, ERROR); errors are RFC 9457 problem documents; every answer carries
  `RateLimit` headers. Requests (and the fake's own pods) are validated against the spec's
  schemas (`runpod_v2_schemas.json`): a body outside the contract gets 422 with `errors`.
- Placement: 400 when a GPU type has no capacity or no host matches `allowedCudaVersions`
  (hosts report `host_cuda`), 402 without balance, 400 for an unknown registry credential.
- Containers: a pod runs its image's entrypoint (the `images` map stands in for the images)
  with the create request's `args`, as a local process in the pod's environment only: the
  image's variables (`base_env`), a home of its own (a fresh machine), `RUNPOD_POD_ID`, and the
  request's `env`, in which `{{ RUNPOD_SECRET_<name> }}` is replaced by the account's secret.
  A container that exits is restarted, as RunPod does. An image it does not know never
  starts: the pod stays STARTING with pull errors in its log.
- Known failure modes, on demand (`faults`, or at random with `chaos_rate`): a create that
  makes the pod and then answers 500 (or no answer at all), 429 with `Retry-After`; pods that
  appear in the listing only after `list_lag_s`; a pod that is lost (`lose`: gone, EXITED or
  ERROR) or whose container dies (`crash_container`).
- `DELETE` kills the pod's process group; the pod answers 404 from then on and leaves the list.

Everything is recorded for assertions: the pods (request, env, restarts, log), every create
request, every termination, every request with its status.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import random
import re
import shlex
import signal
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import psutil
from jsonschema import Draft202012Validator

SCHEMAS = json.loads((Path(__file__).parent / "runpod_v2_schemas.json").read_text())
POD_PATH = re.compile(r"^/v2/pods/([A-Za-z0-9_-]+)(/logs|/action)?$")
REGISTRY_PATH = re.compile(r"^/v2/registries/([A-Za-z0-9_-]+)$")
SECRET_PATTERN = re.compile(r"\{\{\s*RUNPOD_SECRET_([A-Za-z0-9_.-]+)\s*\}\}")
ACTIONS = {
    "PROVISIONING": ["stop", "terminate"],
    "STARTING": ["stop", "terminate"],
    "RUNNING": ["stop", "restart", "terminate"],
    "EXITED": ["start", "terminate"],
    "ERROR": ["start", "terminate"],
}
RATE_LIMIT = '"minute";r=59;t=60, "hour";r=2999;t=3600, "day";r=49999;t=86400'
RATE_LIMIT_POLICY = '"minute";q=60;w=60, "hour";q=3000;w=3600, "day";q=50000;w=86400'


def schema_validator(name: str) -> Draft202012Validator:
    """A validator of one of the spec's schemas (`CreatePodRequest`, `Pod`, ...)."""
    return Draft202012Validator(
        {"$ref": f"#/components/schemas/{name}", "components": SCHEMAS["components"]}
    )


CREATE_POD = schema_validator("CreatePodRequest")


def _now_iso() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Fault:
    """An injected failure for the next request matching `method` and `path` (a prefix).

    `after_effect`: the request takes effect, then the answer is `status` (RunPod's
    500-after-create). `drop`: the connection closes without an answer (a timeout)."""

    method: str
    path: str
    status: int = 500
    after_effect: bool = False
    drop: bool = False
    retry_after: int | None = None


@dataclass
class FakePod:
    id: str
    request: dict[str, Any]
    home: Path
    log_path: Path
    created_at: str = field(default_factory=_now_iso)
    created: float = field(default_factory=time.monotonic)
    status: str = "PROVISIONING"
    started_at: str | None = None
    process: subprocess.Popen | None = None
    restarts: int = 0
    terminated_at: float | None = None

    @property
    def env(self) -> dict[str, str]:
        """The environment of the create request (secret references unresolved)."""
        return self.request.get("env") or {}

    @property
    def name(self) -> str:
        return str(self.request.get("name"))

    def to_json(self) -> dict[str, Any]:
        """The pod as the spec's `Pod` schema describes it."""
        gpu = self.request.get("gpu") or {}
        running = self.status == "RUNNING"
        assigned = self.status != "PROVISIONING"
        return {
            "id": self.id,
            "name": self.name,
            "image": self.request.get("image"),
            "args": self.request.get("args", ""),
            "disk": self.request.get("disk", 50),
            "ports": self.request.get("ports", []),
            "env": self.env,
            "registry": self.request.get("registry"),
            "status": self.status,
            "actions": ACTIONS.get(self.status, []),
            "mounts": self.request.get("mounts") or {},
            "gpu": {"id": gpu.get("id"), "count": gpu.get("count", 1)},
            "cloud": self.request.get("cloud", "SECURE"),
            "dataCenterId": "US-TX-3" if assigned else None,
            "cudaVersion": "12.8" if assigned else None,
            "ssh": {"proxy": None, "direct": None},
            "template": None,
            "cost": 0.0 if self.status in ("EXITED", "TERMINATED") else 2.99,
            "locked": False,
            "globalNetworking": {"enabled": False},
            "runtime": {"uptime": int(time.monotonic() - self.created)} if running else None,
            "createdAt": self.created_at,
            "startedAt": self.started_at,
        }


class FakeRunPod:
    """The fake API server. `base_url` is what RUNPOD_API_BASE_URL should be set to."""

    def __init__(
        self,
        api_key: str,
        workdir: Path,
        images: dict[str, list[str]] | None = None,
        base_env: dict[str, str] | None = None,
        cwd: str | None = None,
        secrets: dict[str, str] | None = None,
        registries: dict[str, str] | None = None,
        host_cuda: str = "12.8",
        provision_s: float = 0.2,
        restart_delay_s: float = 0.5,
        list_lag_s: float = 0.0,
        chaos_rate: float = 0.0,
        seed: int = 0,
    ) -> None:
        self.api_key = api_key
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.images = dict(images or {})
        self.base_env = dict(base_env or {})
        self.cwd = cwd or str(self.workdir)
        self.secrets = dict(secrets or {})
        self.registries = dict(registries or {})
        self.host_cuda = host_cuda
        self.provision_s = provision_s
        self.restart_delay_s = restart_delay_s
        self.list_lag_s = list_lag_s
        self.chaos_rate = chaos_rate
        self.random = random.Random(seed)
        self.capacity: dict[str, int] = {}  # GPU type -> pods still placeable (absent: any)
        self.balance = True
        self.faults: list[Fault] = []
        self.pods: dict[str, FakePod] = {}
        self.create_requests: list[dict[str, Any]] = []
        self.terminations: list[str] = []
        self.requests: list[tuple[str, str, int]] = []
        self.unauthorized = 0
        self._lock = threading.RLock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v2"

    def start(self) -> FakeRunPod:
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        for pod in list(self.pods.values()):
            with self._lock:
                pod.terminated_at = pod.terminated_at or time.time()
            self._kill(pod)
        self._server.shutdown()
        self._server.server_close()

    # -- for assertions ----------------------------------------------------------------------

    def live_pods(self) -> list[FakePod]:
        """Pods not terminated (billed: running, starting, or exited)."""
        return [pod for pod in self.pods.values() if pod.terminated_at is None]

    def pods_named(self, name: str) -> list[FakePod]:
        return [pod for pod in self.pods.values() if pod.name == name]

    def pods_of_run(self, flow_run_id: str) -> list[FakePod]:
        """Every pod created for a flow run, in creation order."""
        pods = [p for p in self.pods.values() if p.env.get("PREFECT__FLOW_RUN_ID") == flow_run_id]
        return sorted(pods, key=lambda p: p.created)

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

    # -- what happens to pods ----------------------------------------------------------------

    def lose(self, pod_id: str, how: str = "gone") -> None:
        """A pod lost without anyone asking: `gone` (host failure: RunPod no longer knows
        it), `EXITED` (stopped, e.g. a community host reclaimed) or `ERROR`."""
        pod = self.pods[pod_id]
        with self._lock:
            if how == "gone":
                pod.terminated_at = time.time()
            else:
                pod.status = how
        self._kill(pod, graceful=False)  # no chance to report anything

    def crash_container(self, pod_id: str) -> None:
        """The container's main process dies (out of memory, ...), taking every process of
        the container with it; RunPod restarts it."""
        self._kill(self.pods[pod_id], graceful=False)

    def create(self, body: dict[str, Any]) -> FakePod:
        pod_id = uuid.uuid4().hex[:14]
        home = self.workdir / f"pod-{pod_id}"
        home.mkdir(parents=True)
        pod = FakePod(id=pod_id, request=body, home=home, log_path=home / "container.log")
        with self._lock:
            self.pods[pod_id] = pod
        threading.Thread(target=self._run_container, args=(pod,), daemon=True).start()
        return pod

    def terminate(self, pod_id: str) -> bool:
        """Forget the pod at once (404 from now on); its container stops in the background,
        as `docker stop` does behind RunPod's answer."""
        with self._lock:
            pod = self.pods.get(pod_id)
            if pod is None or pod.terminated_at is not None:
                return False
            pod.terminated_at = time.time()
            self.terminations.append(pod_id)
        threading.Thread(target=self._kill, args=(pod,), daemon=True).start()
        return True

    def _run_container(self, pod: FakePod) -> None:
        """Provision, pull, start; restart the container whenever it exits on its own."""
        time.sleep(self.provision_s)
        with self._lock:
            if pod.terminated_at is not None or pod.status != "PROVISIONING":
                return
            pod.status = "STARTING"
        image = str(pod.request.get("image"))
        entrypoint = self.images.get(image)
        if entrypoint is None:
            while pod.terminated_at is None and pod.status == "STARTING":
                self._system_log(pod, f"error pulling image {image}: pull access denied")
                time.sleep(0.5)
            return
        argv = entrypoint + shlex.split(str(pod.request.get("args") or ""))
        while True:
            with self._lock:
                if pod.terminated_at is not None or pod.status not in ("STARTING", "RUNNING"):
                    return
                with open(pod.log_path, "ab") as log:
                    pod.process = subprocess.Popen(
                        argv,
                        env=self._container_env(pod),
                        cwd=self.cwd,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                pod.status = "RUNNING"
                pod.started_at = pod.started_at or _now_iso()
            code = pod.process.wait()
            time.sleep(self.restart_delay_s)
            with self._lock:
                if pod.terminated_at is not None or pod.status != "RUNNING":
                    return
                pod.restarts += 1
            self._system_log(pod, f"container exited with code {code}; restarting it")

    def _container_env(self, pod: FakePod) -> dict[str, str]:
        """The image's variables, a home of the pod's own, RunPod's, then the request's."""

        def resolve(value: str) -> str:
            return SECRET_PATTERN.sub(lambda m: self.secrets.get(m.group(1), m.group(0)), value)

        requested = {k: resolve(str(v)) for k, v in pod.env.items()}
        return {**self.base_env, "HOME": str(pod.home), "RUNPOD_POD_ID": pod.id, **requested}

    def _system_log(self, pod: FakePod, line: str) -> None:
        with open(pod.log_path, "a", encoding="utf-8") as log:
            log.write(f"[runpod] {line}\n")

    @staticmethod
    def _kill(pod: FakePod, graceful: bool = True) -> None:
        """Stop the container as Docker does: SIGTERM to its main process and up to 10 s to
        exit (`graceful`), then SIGKILL to every process left in it. A container's processes
        are those carrying its `RUNPOD_POD_ID`, whatever session or group they started."""
        process = pod.process
        if graceful and process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=10)
        for member in _container_processes(pod.id):
            with contextlib.suppress(psutil.Error):
                member.kill()
        if process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=10)

    # -- API ---------------------------------------------------------------------------------

    def _placement_problem(self, body: dict[str, Any]) -> tuple[int, str] | None:
        """Why RunPod would not place this pod (status, detail), or None."""
        if ("gpu" in body) == ("cpu" in body):
            return 400, "exactly one of gpu or cpu must be set"
        if "cpu" in body:
            return 400, "no CPU capacity in this stand-in"
        if not self.balance:
            return 402, "insufficient balance"
        registry = body.get("registry")
        if registry and registry not in self.registries:
            return 400, f"container registry credential {registry} not found"
        gpu = body["gpu"]
        allowed = gpu.get("allowedCudaVersions") or []
        if allowed and self.host_cuda not in allowed:
            return 400, f"no host with CUDA in {allowed} for {gpu['id']}"
        if self.capacity.get(gpu["id"], 1) <= 0:
            return 400, f"There are no longer any instances available with {gpu['id']}"
        return None

    def _create_answer(self, body: dict[str, Any]) -> tuple[int, Any]:
        errors = sorted(e.message for e in CREATE_POD.iter_errors(body))
        if errors:
            return 422, _problem(422, "Request validation failed.", errors)
        problem = self._placement_problem(body)
        if problem is not None:
            return problem[0], _problem(*problem)
        gpu_id = body["gpu"]["id"]
        if gpu_id in self.capacity:
            self.capacity[gpu_id] -= 1
        return 201, self.create(body).to_json()

    def _listing(self) -> dict[str, Any]:
        visible = time.monotonic() - self.list_lag_s
        return {"pods": [pod.to_json() for pod in self.live_pods() if pod.created <= visible]}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return

            def _send(self, status: int, payload: Any = None, retry_after: int | None = None):
                data = b"" if payload is None or status == 204 else json.dumps(payload).encode()
                self.send_response(status)
                problem = status >= 400
                kind = "application/problem+json" if problem else "application/json"
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.send_header("RateLimit", RATE_LIMIT)
                self.send_header("RateLimit-Policy", RATE_LIMIT_POLICY)
                if retry_after is not None:
                    self.send_header("Retry-After", str(retry_after))
                self.end_headers()
                self.wfile.write(data)
                fake.requests.append((self.command, self.path, status))

            def _body(self) -> Any:
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    return json.loads(self.rfile.read(length) or b"{}")
                except ValueError:
                    return None

            def _fault(self) -> Fault | None:
                path = urlsplit(self.path).path
                with fake._lock:
                    for fault in fake.faults:
                        if fault.method == self.command and path.startswith(fault.path):
                            fake.faults.remove(fault)
                            return fault
                if fake.chaos_rate and fake.random.random() < fake.chaos_rate:
                    if self.command == "POST" and path == "/v2/pods":
                        return Fault("POST", path, 500, after_effect=True)
                    return Fault(self.command, path, 429, retry_after=1)
                return None

            def _handle(self) -> None:
                if self.headers.get("Authorization") != f"Bearer {fake.api_key}":
                    fake.unauthorized += 1
                    self._body()
                    self._send(401, _problem(401, "missing or invalid bearer token"))
                    return
                fault = self._fault()
                if fault is not None and not (fault.after_effect or fault.drop):
                    self._body()
                    self._send(fault.status, _problem(fault.status, "injected"), fault.retry_after)
                    return
                status, payload = self._route()
                if fault is not None and fault.drop:
                    fake.requests.append((self.command, self.path, 0))
                    self.close_connection = True
                    with contextlib.suppress(OSError):
                        self.connection.shutdown(2)
                    return
                if fault is not None:
                    status, payload = fault.status, _problem(fault.status, "upstream error")
                if status == -1:  # streamed already
                    return
                self._send(status, payload)

            def _route(self) -> tuple[int, Any]:
                url = urlsplit(self.path)
                if self.command == "POST" and url.path == "/v2/pods":
                    body = self._body()
                    if not isinstance(body, dict):
                        return 400, _problem(400, "body is not a JSON object")
                    fake.create_requests.append(body)
                    return fake._create_answer(body)
                if self.command == "GET" and url.path == "/v2/pods":
                    return 200, fake._listing()
                match = REGISTRY_PATH.match(url.path)
                if match and self.command == "GET":
                    name = fake.registries.get(match.group(1))
                    if name is None:
                        return 404, _problem(404, "registry not found")
                    return 200, {"id": match.group(1), "name": name}
                match = POD_PATH.match(url.path)
                pod = fake.pods.get(match.group(1)) if match else None
                if pod is None or pod.terminated_at is not None:
                    self._body()
                    return 404, _problem(404, "pod not found")
                if match.group(2) == "/logs" and self.command == "GET":
                    self._stream_logs(pod, parse_qs(url.query))
                    return -1, None
                if match.group(2) == "/action" and self.command == "POST":
                    return self._action(pod, self._body() or {})
                if self.command == "GET":
                    return 200, pod.to_json()
                if self.command == "DELETE":
                    fake.terminate(pod.id)
                    return 204, None
                return 405, _problem(405, "method not allowed")

            def _action(self, pod: FakePod, body: dict[str, Any]) -> tuple[int, Any]:
                action = body.get("action")
                if action not in ACTIONS.get(pod.status, []):
                    return 409, _problem(409, f"cannot {action} a {pod.status} pod")
                if action == "terminate":
                    fake.terminate(pod.id)
                    return 204, None
                if action == "stop":
                    fake.lose(pod.id, "EXITED")
                return 200, pod.to_json()

            def _stream_logs(self, pod: FakePod, query: dict[str, list[str]]) -> None:
                tail = int((query.get("tail") or ["100"])[0])
                lines = fake.pod_log(pod).splitlines()[-tail:] if tail else []
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.end_headers()
                fake.requests.append((self.command, self.path, 200))
                try:
                    for line in lines:
                        source = "system" if line.startswith("[runpod]") else "container"
                        event = {"ts": _now_iso(), "source": source, "line": line}
                        self.wfile.write(
                            f"id: {event['ts']}\ndata: {json.dumps(event)}\n\n".encode()
                        )
                    self.wfile.flush()
                    time.sleep(10)  # the stream stays open, as RunPod's does
                except OSError:
                    pass
                self.close_connection = True

            def do_GET(self) -> None:  # noqa: N802
                self._handle()

            def do_POST(self) -> None:  # noqa: N802
                self._handle()

            def do_DELETE(self) -> None:  # noqa: N802
                self._handle()

        return Handler


def _problem(status: int, detail: str, errors: list[str] | None = None) -> dict[str, Any]:
    titles = {400: "Bad Request", 401: "Unauthorized", 402: "Payment Required", 404: "Not Found"}
    problem: dict[str, Any] = {"title": titles.get(status, "Error"), "status": status}
    problem["detail"] = detail
    if errors:
        problem["errors"] = errors
    return problem


def dockerfile_image(
    dockerfile: Path, python_bin: str, code_root: str
) -> tuple[list[str], dict[str, str]]:
    """(entrypoint, environment) of smelt's image as its Dockerfile declares them, for a pod
    run here: the entrypoint's `python` is this interpreter, and the code is this checkout
    (`PYTHONPATH`) instead of the image's /app."""
    text = dockerfile.read_text()
    entrypoint = json.loads(re.search(r"^ENTRYPOINT\s+(\[.*\])\s*$", text, re.M).group(1))
    entrypoint = [python_bin if part == "python" else part for part in entrypoint]
    env: dict[str, str] = {}
    for block in re.findall(r"^ENV\s+((?:.*\\\n)*.*)$", text, re.M):
        for key, value in re.findall(r'(\w+)=("[^"]*"|\S+)', block.replace("\\\n", " ")):
            env[key] = value.strip('"')
    env.update(
        {
            "PATH": f"{Path(python_bin).parent}:/usr/local/bin:/usr/bin:/bin",
            "PYTHONPATH": code_root,
            "LANG": "C.UTF-8",
        }
    )
    return entrypoint, env


def _container_processes(pod_id: str) -> list[psutil.Process]:
    """The processes of one fake container: those whose environment names its pod."""
    members = []
    for process in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            if process.environ().get("RUNPOD_POD_ID") == pod_id:
                members.append(process)
    return members
