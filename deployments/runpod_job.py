"""The `runpod` work pool's job: what one flow run's pod is (image, GPU, volume, environment,
limits), as the pool's form (`RunPodVariables`) and the rendered configuration
(`RunPodJobConfiguration`), and how a pod is named so that a later worker knows it is its pool's.

Pods are named `smelt-<work pool>-<flow run id>`: RunPod has no labels, the name is the label.
The API key comes from the `api_key` variable (best a Secret block reference,
`{{ prefect.blocks.secret.runpod-api-key }}`) or the worker's `RUNPOD_API_KEY`; it is never
put in the pod's environment.
"""

from __future__ import annotations

import os
import re
import shlex
import time
from typing import Any, Literal
from uuid import UUID

from prefect.workers.base import BaseJobConfiguration, BaseVariables
from pydantic import Field, SecretStr

from smelt.deployments.runpod_api import PodSpec, RunPodClient

DEFAULT_IMAGE = "ghcr.io/smelt-project/smelt:latest"
DEFAULT_GPU_TYPE = "NVIDIA GeForce RTX 4090"
DEFAULT_FORWARD_ENV = [
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_ENDPOINT_URL",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
]
POD_NAME_PREFIX = "smelt"
DEADLINE_ENV = "SMELT_POD_DEADLINE"
UUID_TAIL = re.compile(r"([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$")
CloudType = Literal["SECURE", "COMMUNITY"]


def pod_name(work_pool: str, flow_run_id: UUID | str) -> str:
    """The pod's name, which is also how a later worker knows the pod is its pool's."""
    return f"{POD_NAME_PREFIX}-{work_pool}-{flow_run_id}"


def flow_run_id_of_pod(pod: dict[str, Any], work_pool: str) -> UUID | None:
    """The flow run a pod was created for, when the pod belongs to `work_pool`."""
    name = str(pod.get("name") or "")
    match = UUID_TAIL.search(name)
    if not match or name != pod_name(work_pool, match.group(1)):
        return None
    return UUID(match.group(1))


FIELD_SPECS: dict[str, dict[str, Any]] = {
    "image": dict(
        default=DEFAULT_IMAGE,
        description="Container image of the pod (smelt's "
        "image from deployments/Dockerfile, pushed to a registry RunPod can pull).",
    ),
    "gpu_type": dict(
        default=DEFAULT_GPU_TYPE,
        description="RunPod GPU type id, e.g. 'NVIDIA "
        "GeForce RTX 4090', 'NVIDIA H100 80GB HBM3', 'NVIDIA A100 80GB PCIe'.",
    ),
    "gpu_count": dict(default=1, ge=1, le=8, description="GPUs in the pod."),
    "volume_gb": dict(default=50, ge=0, description="Pod volume in GB (at /workspace)."),
    "container_disk_gb": dict(default=50, ge=1, description="Container disk in GB."),
    "cloud_type": dict(default="SECURE", description="RunPod cloud: SECURE or COMMUNITY."),
    "max_runtime_s": dict(
        default=6 * 3600,
        ge=1,
        description="Hard limit: a pod older than "
        "this is terminated and its flow run marked crashed.",
    ),
    "api_base_url": dict(
        default=None,
        description="RunPod REST API base URL; default: the "
        "worker's RUNPOD_API_BASE_URL, else https://rest.runpod.io/v1.",
    ),
    "api_key": dict(
        default=None,
        description="RunPod API key; leave empty to use the "
        "worker's RUNPOD_API_KEY, or reference a Secret block.",
    ),
    "forward_env": dict(
        default_factory=lambda: list(DEFAULT_FORWARD_ENV),
        description="Variables copied from the worker's environment into the "
        "pod when set (S3 credentials).",
    ),
    "poll_interval_s": dict(default=10.0, gt=0, description="Seconds between status checks."),
    "cancel_grace_s": dict(
        default=30.0,
        ge=0,
        description="Seconds a cancelled run's pod "
        "gets to report the cancellation before it is terminated.",
    ),
}


def _field(name: str) -> Any:
    """A fresh pydantic Field for `name` (the job configuration and the pool's form share
    these definitions)."""
    return Field(**FIELD_SPECS[name])


class RunPodJobConfiguration(BaseJobConfiguration):
    """One flow run's pod, rendered from the work pool's base job template."""

    image: str = _field("image")
    gpu_type: str = _field("gpu_type")
    gpu_count: int = _field("gpu_count")
    volume_gb: int = _field("volume_gb")
    container_disk_gb: int = _field("container_disk_gb")
    cloud_type: CloudType = _field("cloud_type")
    max_runtime_s: int = _field("max_runtime_s")
    api_base_url: str | None = _field("api_base_url")
    api_key: SecretStr | None = _field("api_key")
    forward_env: list[str] = _field("forward_env")
    poll_interval_s: float = _field("poll_interval_s")
    cancel_grace_s: float = _field("cancel_grace_s")

    def resolved_api_key(self) -> str | None:
        if self.api_key is not None and self.api_key.get_secret_value():
            return self.api_key.get_secret_value()
        return os.environ.get("RUNPOD_API_KEY")

    def runpod_client(self) -> RunPodClient:
        return RunPodClient(api_key=self.resolved_api_key(), base_url=self.api_base_url)

    def pod_spec(self, work_pool: str, flow_run_id: UUID) -> PodSpec:
        """The pod for one flow run: the flow-run command, the env, a deadline for sweeps."""
        env = {key: value for key, value in self.env.items() if value is not None}
        for key in self.forward_env:
            if key not in env and os.environ.get(key):
                env[key] = os.environ[key]
        env.pop("RUNPOD_API_KEY", None)  # the pod never needs the key that can create pods
        env[DEADLINE_ENV] = str(int(time.time() + self.max_runtime_s))
        return PodSpec(
            name=pod_name(work_pool, flow_run_id),
            image=self.image,
            gpu_type=self.gpu_type,
            gpu_count=self.gpu_count,
            volume_gb=self.volume_gb,
            container_disk_gb=self.container_disk_gb,
            cloud_type=self.cloud_type,
            env=env,
            start_cmd=shlex.split(self.command or "prefect flow-run execute"),
        )


class RunPodVariables(BaseVariables):
    """The work pool's form (the Prefect UI renders it; deployments override any field)."""

    image: str = _field("image")
    gpu_type: str = _field("gpu_type")
    gpu_count: int = _field("gpu_count")
    volume_gb: int = _field("volume_gb")
    container_disk_gb: int = _field("container_disk_gb")
    cloud_type: CloudType = _field("cloud_type")
    max_runtime_s: int = _field("max_runtime_s")
    api_base_url: str | None = _field("api_base_url")
    api_key: SecretStr | None = _field("api_key")
    forward_env: list[str] = _field("forward_env")
    poll_interval_s: float = _field("poll_interval_s")
    cancel_grace_s: float = _field("cancel_grace_s")
