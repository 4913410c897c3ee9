"""A small client for RunPod's REST API v2 (`https://api.runpod.io/v2`): pods and registry
credentials, as its OpenAPI spec describes them.

Why REST and not the `runpod` SDK or GraphQL: the SDK's `create_pod` builds its GraphQL mutation
with unescaped f-strings, so an environment value with a quote or a newline breaks the request
or, worse, changes it. The REST API takes the pod as a JSON body that httpx encodes, so every
value arrives exactly as given. RunPod's REST v1 is retired; v2 has another create body
(`image`, `gpu: {id, count}`, `mounts`, `cloud`, `args`), lists as `{"pods": [...]}`, reports a
pod's real `status` (PROVISIONING, STARTING, RUNNING, EXITED, ERROR, TERMINATED) and answers
errors as RFC 9457 problem documents.

Endpoints used (all with `Authorization: Bearer <key>`):

    POST   /pods                 create a pod (201 + the pod)
    GET    /pods                 the account's pods, `{"pods": [...]}` (terminated ones are gone)
    GET    /pods/{id}            one pod; 404 once it is terminated
    DELETE /pods/{id}            terminate it (204; 404 when it is already gone)
    GET    /pods/{id}/logs       the container's log as server-sent events (`tail` lines first)
    GET    /registries/{id}      a container registry credential (404 when unknown)

Retries. A request the server did not process (429, or a connection that never opened) is
repeated after the server's `Retry-After` (else the exhausted `RateLimit` window, else a
backoff). Reads and terminations are also repeated after a 5xx or a timeout: doing them twice
is harmless. A create is not: RunPod is known to create the pod and still answer 500, so a 5xx
or a timeout on `POST /pods` raises `CreateOutcomeUnknown` and the caller looks the pod up by
its name before trying again (`runpod_placement.py`).

The API key is sent only in the header and is never part of an exception message or a log line:
`redact` removes it from any text that could echo it (an error body, a URL).
"""

from __future__ import annotations

import email.utils
import json
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

import anyio
import httpx

from smelt.errors import ConfigError, SmeltError

logger = logging.getLogger(__name__)

DEFAULT_API_BASE_URL = "https://api.runpod.io/v2"
RETRY_ON_READ = frozenset({408, 500, 502, 503, 504})  # plus 429, for every method
MAX_RETRY_AFTER_S = 300.0  # a longer wait than this is treated as this (the poll loop goes on)
LIVE_STATUSES = frozenset({"PROVISIONING", "STARTING", "RUNNING"})

Sleep = Callable[[float], Awaitable[Any]]


class RunPodError(SmeltError):
    """RunPod's API refused a request or could not be reached."""

    def __init__(self, message: str, status: int | None = None, detail: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.detail = detail


class NotFound(RunPodError):
    """The pod (or registry credential) does not exist: terminated, or never created."""


class RequestRejected(RunPodError):
    """A create was refused for this placement (400: a rule or no capacity for this GPU type;
    403: no access to that pool): another GPU type may still place."""


class CreateOutcomeUnknown(RunPodError):
    """`POST /pods` answered 5xx or nothing: the pod may or may not exist."""


def api_base_url(configured: str | None = None) -> str:
    """The API base URL: the explicit value, else `RUNPOD_API_BASE_URL`, else RunPod's v2."""
    return (configured or os.environ.get("RUNPOD_API_BASE_URL") or DEFAULT_API_BASE_URL).rstrip("/")


def redact(text: str, secrets: list[str | None]) -> str:
    """`text` with every non-empty secret replaced by `***` (for logs and error messages)."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def problem_summary(response: httpx.Response) -> str:
    """One line from an RFC 9457 problem document (`title`, `detail`, `errors`), or the body."""
    try:
        problem = response.json()
    except ValueError:
        return response.text[:300].strip()
    if not isinstance(problem, dict):
        return str(problem)[:300]
    text = str(problem.get("detail") or problem.get("title") or "")
    errors = problem.get("errors")
    if isinstance(errors, list) and errors:
        text += " (" + "; ".join(str(e) for e in errors[:5]) + ")"
    return text or json.dumps(problem)[:300]


RATE_LIMIT_MEMBER = re.compile(r'"?(\w+)"?\s*;\s*r\s*=\s*(\d+)\s*;\s*t\s*=\s*(\d+)')


def retry_after_s(response: httpx.Response, fallback_s: float) -> float:
    """How long the server asks us to wait: `Retry-After` (seconds or an HTTP date), else the
    reset time of an exhausted `RateLimit` window (`"minute";r=0;t=12`), else `fallback_s`."""
    value = response.headers.get("Retry-After", "").strip()
    wait: float | None = None
    if value.isdigit():
        wait = float(value)
    elif value:
        try:
            wait = email.utils.parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            wait = None
    if wait is None:
        exhausted = [
            int(t)
            for _, r, t in RATE_LIMIT_MEMBER.findall(response.headers.get("RateLimit", ""))
            if int(r) == 0
        ]
        wait = float(max(exhausted)) if exhausted else fallback_s
    return min(max(wait, 0.0), MAX_RETRY_AFTER_S)


@dataclass(frozen=True)
class PodSpec:
    """The fields of `POST /pods` (CreatePodRequest) that smelt sets."""

    name: str
    image: str
    gpu_type: str
    gpu_count: int = 1
    allowed_cuda_versions: tuple[str, ...] = ()
    cloud: str = "SECURE"
    container_disk_gb: int = 50
    volume_gb: int = 50  # host-local persistent mount; 0: none
    volume_path: str = "/workspace"
    env: dict[str, str] = field(default_factory=dict)
    args: str = ""  # arguments of the image's entrypoint
    registry_auth_id: str | None = None

    def for_gpu(self, gpu_type: str) -> PodSpec:
        """The same pod on another GPU type (the next candidate of a fallback list)."""
        return replace(self, gpu_type=gpu_type)

    def to_json(self) -> dict[str, Any]:
        """The request body of `POST /pods`."""
        gpu: dict[str, Any] = {"id": self.gpu_type, "count": self.gpu_count}
        if self.allowed_cuda_versions:
            gpu["allowedCudaVersions"] = list(self.allowed_cuda_versions)
        body: dict[str, Any] = {
            "name": self.name,
            "image": self.image,
            "gpu": gpu,
            "cloud": self.cloud,
            "disk": self.container_disk_gb,
            "env": dict(self.env),
            "args": self.args,
        }
        if self.volume_gb > 0:
            body["mounts"] = {"persistent": {"size": self.volume_gb, "path": self.volume_path}}
        if self.registry_auth_id:
            body["registry"] = self.registry_auth_id
        return body


class RunPodClient:
    """Async client of the REST API v2 (see the module docstring for what is retried)."""

    def __init__(
        self,
        api_key: str | None,
        base_url: str | None = None,
        timeout_s: float = 30.0,
        retries: int = 4,
        backoff_s: float = 0.5,
        sleep: Sleep = anyio.sleep,
    ) -> None:
        if not api_key:
            raise ConfigError(
                "no RunPod API key: set RUNPOD_API_KEY in the worker's environment or the "
                "work pool's `api_key` variable (e.g. from a Secret block)"
            )
        self._api_key = api_key
        self.base_url = api_base_url(base_url)
        self._retries = retries
        self._backoff_s = backoff_s
        self.sleep = sleep
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            timeout=timeout_s,
            headers={"Authorization": f"Bearer {api_key}", "Accept": "application/json"},
        )

    async def __aenter__(self) -> RunPodClient:
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- pods --------------------------------------------------------------------------------

    async def create_pod(self, spec: PodSpec) -> dict[str, Any]:
        """Create a pod; returns it (with `id`). Never repeated after a 5xx or a timeout: those
        raise `CreateOutcomeUnknown`, and the pod may exist (look it up by name)."""
        response = await self._send("POST", "/pods", idempotent=False, json=spec.to_json())
        if response.status_code in (400, 403):
            raise RequestRejected(
                f"RunPod refused a {spec.gpu_count} x {spec.gpu_type} pod "
                f"({response.status_code}): {self._summary(response)}",
                response.status_code,
                self._summary(response),
            )
        if response.status_code == 402:
            raise RunPodError(
                f"RunPod refused pod {spec.name!r}: insufficient balance "
                f"({self._summary(response)}); add credit to the RunPod account",
                402,
            )
        pod = self._decode("POST", "/pods", response)
        if not isinstance(pod, dict) or not pod.get("id"):
            raise RunPodError(f"RunPod created no pod for {spec.name!r}: unexpected answer")
        return pod

    async def get_pod(self, pod_id: str) -> dict[str, Any]:
        """The pod; raises NotFound once it is gone."""
        return await self._call("GET", f"/pods/{pod_id}")

    async def list_pods(self) -> list[dict[str, Any]]:
        """Every pod of the account (terminated pods are not listed)."""
        listing = await self._call("GET", "/pods")
        return list((listing or {}).get("pods") or [])

    async def pods_named(self, name: str) -> list[dict[str, Any]]:
        """The account's pods called `name`, oldest first."""
        pods = [pod for pod in await self.list_pods() if pod.get("name") == name]
        return sorted(pods, key=lambda pod: str(pod.get("createdAt") or ""))

    async def terminate_pod(self, pod_id: str) -> bool:
        """Terminate the pod; False when it was already gone (terminating twice is fine)."""
        try:
            await self._call("DELETE", f"/pods/{pod_id}")
        except NotFound:
            return False
        return True

    async def pod_log_tail(self, pod_id: str, lines: int = 20, wait_s: float = 3.0) -> list[str]:
        """The last `lines` lines of the pod's log (best effort: [] when unavailable). The
        endpoint streams server-sent events and stays open, so reading stops after `wait_s`."""
        collected: list[str] = []
        with anyio.move_on_after(wait_s):
            try:
                async with self._http.stream(
                    "GET", f"/pods/{pod_id}/logs", params={"tail": lines}
                ) as response:
                    if response.status_code != 200:
                        return []
                    async for raw in response.aiter_lines():
                        if raw.startswith("data:"):
                            try:
                                event = json.loads(raw[5:].strip())
                            except ValueError:
                                continue
                            collected.append(f"[{event.get('source', '?')}] {event.get('line')}")
            except httpx.HTTPError:
                pass
        return [self._redact(line) for line in collected[-lines:]]

    # -- registry credentials ----------------------------------------------------------------

    async def get_registry(self, registry_id: str) -> dict[str, Any] | None:
        """A container registry credential (id and name), or None when the id is unknown."""
        try:
            return await self._call("GET", f"/registries/{registry_id}")
        except NotFound:
            return None

    # -- transport ---------------------------------------------------------------------------

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self._send(method, path, idempotent=True, **kwargs)
        return self._decode(method, path, response)

    async def _send(
        self, method: str, path: str, idempotent: bool, **kwargs: Any
    ) -> httpx.Response:
        """One request with the retries of the module docstring; 404 raises NotFound."""
        for attempt in range(self._retries + 1):
            last = attempt == self._retries
            backoff = self._backoff_s * 2**attempt
            try:
                response = await self._http.request(method, path, **kwargs)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:  # never reached RunPod
                if last:
                    raise self._unreachable(method, path, exc) from None
                delay = backoff
            except httpx.TransportError as exc:  # sent; the answer was lost
                if not idempotent:
                    raise CreateOutcomeUnknown(
                        f"RunPod {method} {path}: no answer ({type(exc).__name__}); "
                        "the pod may have been created"
                    ) from None
                if last:
                    raise self._unreachable(method, path, exc) from None
                delay = backoff
            else:
                status = response.status_code
                if status == 404:
                    raise NotFound(f"RunPod: not found ({method} {path})", 404)
                if status == 429 and not last:
                    delay = retry_after_s(response, backoff)
                elif status in RETRY_ON_READ and not idempotent:
                    raise CreateOutcomeUnknown(
                        f"RunPod {method} {path} answered {status} "
                        f"({self._summary(response)}); the pod may have been created",
                        status,
                    )
                elif status in RETRY_ON_READ and not last:
                    delay = backoff
                else:
                    return response
            logger.debug(
                "RunPod %s %s: attempt %d failed; retrying in %.1fs",
                method,
                path,
                attempt + 1,
                delay,
            )
            await self.sleep(delay)
        raise AssertionError("unreachable")

    def _decode(self, method: str, path: str, response: httpx.Response) -> Any:
        if response.status_code >= 400:
            hint = " (check RUNPOD_API_KEY)" if response.status_code in (401, 403) else ""
            raise RunPodError(
                f"RunPod {method} {path} answered {response.status_code}{hint}: "
                f"{self._summary(response)}",
                response.status_code,
                self._summary(response),
            )
        if not response.content:
            return None
        return response.json()

    def _unreachable(self, method: str, path: str, exc: Exception) -> RunPodError:
        return RunPodError(
            f"RunPod API at {self.base_url} unreachable for {method} {path}: "
            f"{self._redact(str(exc)) or type(exc).__name__}"
        )

    def _summary(self, response: httpx.Response) -> str:
        return self._redact(problem_summary(response))

    def _redact(self, text: str) -> str:
        return redact(text, [self._api_key])
