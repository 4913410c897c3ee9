"""The `runpod` work pool's job: what one flow run's pod is (image, GPU types, volume,
environment, limits), as the pool's form (`RunPodVariables`) and the rendered configuration
(`RunPodJobConfiguration`), and how a pod is named so that a later worker knows it is its pool's.

Pods are named `smelt-<work pool>-<flow run id>`: RunPod has no labels, the name is the label,
and it is also what makes creation idempotent (`runpod_placement.py`). A replacement pod (after
a pod was lost) gets the same name and the next `SMELT_POD_ATTEMPT`.

Credentials reach pods the way RunPod recommends: as RunPod secrets, referenced from the pod's
environment as `{{ RUNPOD_SECRET_<name> }}` and filled in by RunPod when the container starts
(the `secrets` variable maps variable names to secret names). Their values never pass through
the worker, the create request, Prefect or a log. The RunPod API key comes from the `api_key`
variable (best a Secret block reference) or the worker's `RUNPOD_API_KEY`; it never goes to pods.
"""

from __future__ import annotations

import os
import re
import time
from typing import Any, Literal
from uuid import UUID

from prefect.workers.base import BaseJobConfiguration, BaseVariables
from pydantic import BaseModel, Field, SecretStr, field_validator

from smelt.deployments.runpod_api import PodSpec, RunPodClient

DEFAULT_IMAGE = "ghcr.io/smelt-project/smelt:latest"
DEFAULT_GPU_TYPE = "NVIDIA GeForce RTX 4090"
# The CUDA of deployments/Dockerfile's base image, and the host CUDA versions RunPod reports
# that can run it (a host's driver runs its own CUDA and every older one). RunPod matches
# `allowedCudaVersions` exactly, so the list names each version from the image's up.
IMAGE_CUDA = "12.6"
HOST_CUDA_VERSIONS = ("12.6", "12.7", "12.8", "12.9", "13.0", "13.1", "13.2")
# Plain (non-secret) S3 settings copied from the worker's environment when set.
DEFAULT_FORWARD_ENV = [
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
]
POD_NAME_PREFIX = "smelt"
DEADLINE_ENV = "SMELT_POD_DEADLINE"
ATTEMPT_ENV = "SMELT_POD_ATTEMPT"
UUID_TAIL = re.compile(r"([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$")
SECRET_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
SECRET_REF = re.compile(r"^\{\{\s*RUNPOD_SECRET_[A-Za-z0-9_.-]+\s*\}\}$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
CloudType = Literal["SECURE", "COMMUNITY"]


def cuda_versions_from(minimum: str) -> list[str]:
    """The known host CUDA versions at or above `minimum` ("12.6" -> 12.6 ... 13.2)."""

    def key(version: str) -> tuple[int, int]:
        major, minor = version.split(".")
        return int(major), int(minor)

    return [v for v in HOST_CUDA_VERSIONS if key(v) >= key(minimum)]


def secret_ref(secret_name: str) -> str:
    """The environment value RunPod replaces with the secret's value at container start."""
    return "{{ RUNPOD_SECRET_" + secret_name + " }}"


def is_secret_ref(value: str) -> bool:
    return bool(SECRET_REF.match(value or ""))


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
        description="Container image of the pod: smelt's image (deployments/Dockerfile), "
        "pushed to a registry RunPod can pull. Its entrypoint runs the flow run once.",
    ),
    "gpu_type": dict(
        default=DEFAULT_GPU_TYPE,
        description="Preferred RunPod GPU type id, e.g. 'NVIDIA GeForce RTX 4090', "
        "'NVIDIA H100 80GB HBM3', 'NVIDIA H200', 'NVIDIA A100 80GB PCIe'.",
    ),
    "fallback_gpu_types": dict(
        default_factory=list,
        description="GPU types tried in order when the preferred one cannot be placed "
        "(no capacity or no access).",
    ),
    "gpu_count": dict(default=1, ge=1, le=8, description="GPUs in the pod."),
    "allowed_cuda_versions": dict(
        default_factory=lambda: cuda_versions_from(IMAGE_CUDA),
        description="Host CUDA versions the pod may land on (RunPod matches exactly); the "
        f"default runs the image's CUDA {IMAGE_CUDA}. Empty: any host.",
    ),
    "cloud_type": dict(default="SECURE", description="RunPod cloud: SECURE or COMMUNITY."),
    "volume_gb": dict(
        default=50,
        ge=0,
        description="Host-local persistent volume in GB at /workspace (0: none; RunPod's "
        "minimum is 10). Checkpoints belong on S3: a replacement pod gets a new volume.",
    ),
    "container_disk_gb": dict(default=50, ge=1, description="Container disk in GB."),
    "registry_auth_id": dict(
        default=None,
        description="RunPod container registry credential id (RunPod console or "
        "POST /v2/registries) for a private image.",
    ),
    "max_runtime_s": dict(
        default=6 * 3600,
        ge=1,
        description="Hard limit on the run, replacements included: the pod is then "
        "terminated and the flow run marked crashed.",
    ),
    "start_timeout_s": dict(
        default=1200,
        ge=1,
        description="Seconds a new pod gets to start the flow run (image pull included); "
        "without a sign of life by then the pod is terminated and the run marked crashed.",
    ),
    "max_restarts": dict(
        default=2,
        ge=0,
        description="How many times a pod lost mid-run (host failure, community-cloud "
        "reclaim) is replaced; training resumes from its newest complete checkpoint.",
    ),
    "api_base_url": dict(
        default=None,
        description="RunPod REST API base URL; default: the worker's RUNPOD_API_BASE_URL, "
        "else https://api.runpod.io/v2.",
    ),
    "api_key": dict(
        default=None,
        description="RunPod API key; leave empty to use the worker's RUNPOD_API_KEY, or "
        "reference a Secret block.",
    ),
    "secrets": dict(
        default_factory=dict,
        description="Credentials for the pod, as {VARIABLE: RunPod secret name}: the pod's "
        "VARIABLE becomes '{{ RUNPOD_SECRET_<name> }}', which RunPod fills in. S3 outputs "
        "need AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY here.",
    ),
    "forward_env": dict(
        default_factory=lambda: list(DEFAULT_FORWARD_ENV),
        description="Non-secret variables copied from the worker's environment into the pod "
        "when set (S3 endpoint and region). Credentials go through `secrets`.",
    ),
    "allow_private_api_url": dict(
        default=False,
        description="Let pods use a loopback or private PREFECT_API_URL (only when pods can "
        "reach it, e.g. through RunPod global networking or a VPN).",
    ),
    "poll_interval_s": dict(default=10.0, gt=0, description="Seconds between status checks."),
    "cancel_grace_s": dict(
        default=30.0,
        ge=0,
        description="Seconds a cancelled run's pod gets to report the cancellation before it "
        "is terminated.",
    ),
}


def _field(name: str) -> Any:
    """A fresh pydantic Field for `name` (the job configuration and the pool's form share
    these definitions)."""
    return Field(**FIELD_SPECS[name])


class _RunPodFields(BaseModel):
    """The fields, and their validation, that the pool's form and the rendered configuration
    share (Prefect wants them on both: the form is built from one, a run from the other)."""

    image: str = _field("image")
    gpu_type: str = _field("gpu_type")
    fallback_gpu_types: list[str] = _field("fallback_gpu_types")
    gpu_count: int = _field("gpu_count")
    allowed_cuda_versions: list[str] = _field("allowed_cuda_versions")
    cloud_type: CloudType = _field("cloud_type")
    volume_gb: int = _field("volume_gb")
    container_disk_gb: int = _field("container_disk_gb")
    registry_auth_id: str | None = _field("registry_auth_id")
    max_runtime_s: int = _field("max_runtime_s")
    start_timeout_s: int = _field("start_timeout_s")
    max_restarts: int = _field("max_restarts")
    api_base_url: str | None = _field("api_base_url")
    api_key: SecretStr | None = _field("api_key")
    secrets: dict[str, str] = _field("secrets")
    forward_env: list[str] = _field("forward_env")
    allow_private_api_url: bool = _field("allow_private_api_url")
    poll_interval_s: float = _field("poll_interval_s")
    cancel_grace_s: float = _field("cancel_grace_s")

    @field_validator("volume_gb")
    @classmethod
    def _volume_floor(cls, value: int) -> int:
        if 0 < value < 10:
            raise ValueError("volume_gb must be 0 (no volume) or at least 10 (RunPod's floor)")
        return value

    @field_validator("secrets")
    @classmethod
    def _secret_names(cls, value: dict[str, str]) -> dict[str, str]:
        for variable, secret in value.items():
            if not ENV_NAME.match(variable) or not SECRET_NAME.match(secret or ""):
                raise ValueError(
                    f"secrets entry {variable!r}: {secret!r} must map a variable name to a "
                    "RunPod secret name (letters, digits, '_', '-', '.')"
                )
        return value


class RunPodJobConfiguration(_RunPodFields, BaseJobConfiguration):
    """One flow run's pod, rendered from the work pool's base job template."""

    @property
    def gpu_types(self) -> list[str]:
        """The preferred GPU type, then the fallbacks, each once."""
        return list(dict.fromkeys([self.gpu_type, *self.fallback_gpu_types]))

    def resolved_api_key(self) -> str | None:
        if self.api_key is not None and self.api_key.get_secret_value():
            return self.api_key.get_secret_value()
        return os.environ.get("RUNPOD_API_KEY")

    def runpod_client(self) -> RunPodClient:
        return RunPodClient(api_key=self.resolved_api_key(), base_url=self.api_base_url)

    def pod_env(self) -> dict[str, str]:
        """The pod's environment: the flow run's (Prefect API, flow run id, job `env`), the
        forwarded worker variables, and a RunPod secret reference per `secrets` entry."""
        env = {key: value for key, value in self.env.items() if value is not None}
        for key in self.forward_env:
            if key not in env and os.environ.get(key):
                env[key] = os.environ[key]
        for key, secret in self.secrets.items():
            env[key] = secret_ref(secret)
        env.pop("RUNPOD_API_KEY", None)  # the pod never needs the key that can create pods
        return env

    def pod_spec(
        self, work_pool: str, flow_run_id: UUID, attempt: int = 0, deadline: float | None = None
    ) -> PodSpec:
        """The pod of one attempt at a flow run (its first GPU type; `for_gpu` for others);
        `deadline` (epoch seconds) is when sweeps may terminate it."""
        env = self.pod_env()
        env[DEADLINE_ENV] = str(int(deadline or time.time() + self.max_runtime_s))
        env[ATTEMPT_ENV] = str(attempt)
        return PodSpec(
            name=pod_name(work_pool, flow_run_id),
            image=self.image,
            gpu_type=self.gpu_type,
            gpu_count=self.gpu_count,
            allowed_cuda_versions=tuple(self.allowed_cuda_versions),
            cloud=self.cloud_type,
            container_disk_gb=self.container_disk_gb,
            volume_gb=self.volume_gb,
            env=env,
            args=self.command or "prefect flow-run execute",
            registry_auth_id=self.registry_auth_id,
        )


class RunPodVariables(_RunPodFields, BaseVariables):
    """The work pool's form (the Prefect UI renders it; deployments override any field)."""
