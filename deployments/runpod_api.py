"""A small client for RunPod's REST API (`https://rest.runpod.io/v1`): create, read, list and
terminate pods.

Why REST and not the `runpod` SDK or GraphQL: the SDK's `create_pod` builds its GraphQL mutation
with unescaped f-strings, so an environment value with a quote or a newline (a JSON credential,
a multi-line key) breaks the request or, worse, changes it. The REST API takes the pod as a JSON
body that httpx encodes, so every value arrives exactly as given.

Endpoints used (all with `Authorization: Bearer <key>`):

    POST   /pods            create a pod, returns its JSON (`id`, `desiredStatus`, ...)
    GET    /pods            list the account's pods
    GET    /pods/{id}       one pod; 404 once it is terminated
    DELETE /pods/{id}       terminate the pod (stops billing, removes the volume)

The API key is sent only in the header and is never part of an exception message or a log line:
`redact` removes it from any text that could echo it (an error body, a URL).
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass, field
from typing import Any

import httpx

from smelt.errors import ConfigError, SmeltError

logger = logging.getLogger(__name__)

DEFAULT_API_BASE_URL = "https://rest.runpod.io/v1"
TRANSIENT_STATUS = {408, 425, 429, 500, 502, 503, 504}


class RunPodError(SmeltError):
    """RunPod's API refused a request or could not be reached."""


class PodNotFound(RunPodError):
    """The pod does not exist (anymore): it was terminated or never created."""


def api_base_url(configured: str | None = None) -> str:
    """The API base URL: the explicit value, else `RUNPOD_API_BASE_URL`, else RunPod's."""
    return (configured or os.environ.get("RUNPOD_API_BASE_URL") or DEFAULT_API_BASE_URL).rstrip("/")


def redact(text: str, secrets: list[str | None]) -> str:
    """`text` with every non-empty secret replaced by `***` (for logs and error messages)."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


@dataclass(frozen=True)
class PodSpec:
    """What a pod needs: the fields of `POST /pods` that smelt sets."""

    name: str
    image: str
    gpu_type: str
    gpu_count: int = 1
    volume_gb: int = 50
    container_disk_gb: int = 50
    cloud_type: str = "SECURE"
    env: dict[str, str] = field(default_factory=dict)
    start_cmd: list[str] = field(default_factory=list)
    volume_mount_path: str = "/workspace"

    def to_json(self) -> dict[str, Any]:
        """The request body of `POST /pods`."""
        return {
            "name": self.name,
            "imageName": self.image,
            "computeType": "GPU",
            "gpuTypeIds": [self.gpu_type],
            "gpuCount": self.gpu_count,
            "volumeInGb": self.volume_gb,
            "containerDiskInGb": self.container_disk_gb,
            "volumeMountPath": self.volume_mount_path,
            "cloudType": self.cloud_type,
            "env": dict(self.env),
            "dockerStartCmd": list(self.start_cmd),
        }


class RunPodClient:
    """Async client of the REST API; retries transient failures (5xx, 429, connection errors)
    a few times with backoff, because a lost terminate call costs GPU hours."""

    def __init__(
        self,
        api_key: str | None,
        base_url: str | None = None,
        timeout_s: float = 30.0,
        retries: int = 4,
        backoff_s: float = 0.5,
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

    async def create_pod(self, spec: PodSpec) -> dict[str, Any]:
        """Create a pod; returns its JSON (with `id`)."""
        pod = await self._request("POST", "/pods", json=spec.to_json())
        if not isinstance(pod, dict) or not pod.get("id"):
            raise RunPodError(f"RunPod created no pod for {spec.name!r}: unexpected answer")
        return pod

    async def get_pod(self, pod_id: str) -> dict[str, Any]:
        """The pod's JSON; raises PodNotFound once it is gone."""
        return await self._request("GET", f"/pods/{pod_id}")

    async def list_pods(self) -> list[dict[str, Any]]:
        """Every pod of the account."""
        pods = await self._request("GET", "/pods")
        return list(pods or [])

    async def terminate_pod(self, pod_id: str) -> bool:
        """Terminate the pod; False when it was already gone (terminating twice is fine)."""
        try:
            await self._request("DELETE", f"/pods/{pod_id}")
        except PodNotFound:
            return False
        return True

    async def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        for attempt in range(self._retries + 1):
            try:
                response = await self._http.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                if attempt == self._retries:
                    raise RunPodError(
                        f"RunPod API at {self.base_url} unreachable for {method} {path}: "
                        f"{self._redact(str(exc))}"
                    ) from None
            else:
                if response.status_code == 404:
                    raise PodNotFound(f"RunPod: no such pod ({method} {path})")
                if response.status_code not in TRANSIENT_STATUS or attempt == self._retries:
                    return self._decode(method, path, response)
            delay = self._backoff_s * 2**attempt
            logger.debug(
                "RunPod %s %s failed (attempt %d); retrying in %.1fs",
                method,
                path,
                attempt + 1,
                delay,
            )
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    def _decode(self, method: str, path: str, response: httpx.Response) -> Any:
        if response.status_code >= 400:
            body = self._redact(response.text[:500])
            hint = " (check RUNPOD_API_KEY)" if response.status_code in (401, 403) else ""
            raise RunPodError(
                f"RunPod {method} {path} answered {response.status_code}{hint}: {body}"
            )
        if not response.content:
            return None
        return response.json()

    def _redact(self, text: str) -> str:
        return redact(text, [self._api_key])
