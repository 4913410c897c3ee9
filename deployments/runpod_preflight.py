"""What the worker refuses before it creates a pod: configurations that cannot work in one.

A pod that cannot reach the Prefect API, cannot pull its image, or has no credentials for the
S3 output it writes does not fail fast: it starts, bills, and (before smelt's pod entrypoint)
looped until `max_runtime_s`. Each check below turns such a run into a refusal whose message
names the setting and the fix; the flow run is marked crashed with it and no pod is created.

- `PREFECT_API_URL` for pods: missing, loopback or private (RFC 1918, link-local, ...) is
  refused unless `allow_private_api_url` says the pods can reach it.
- Credentials in plain text: a variable that looks like a credential (`*_KEY`, `*_SECRET*`,
  `*_TOKEN`, `*_PASSWORD`, ...) must come from a RunPod secret (`secrets`), not as a value.
- S3: a flow run with an `s3://` parameter needs `AWS_ACCESS_KEY_ID` and
  `AWS_SECRET_ACCESS_KEY` in the pod (through `secrets`); a worker whose own credentials come
  from an AWS profile (`~/.aws`) is told that profiles are not forwarded.
- The image: with `registry_auth_id`, the credential must exist on RunPod; without it, the
  registry must allow anonymous pulls (`registry_probe.py`). A registry that cannot be asked
  is a warning, not a refusal.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio

from smelt.deployments import registry_probe
from smelt.deployments.runpod_api import RunPodClient
from smelt.deployments.runpod_job import RunPodJobConfiguration, is_secret_ref
from smelt.errors import ConfigError

logger = logging.getLogger(__name__)

SENSITIVE_PARTS = frozenset(
    {"KEY", "SECRET", "TOKEN", "PASSWORD", "PASSWD", "CREDENTIAL", "CREDENTIALS", "AUTH"}
)
S3_CREDENTIALS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
Probe = Callable[[str], Awaitable[tuple[registry_probe.Access, str]]]


class PodConfigError(ConfigError):
    """The flow run's pod could not work as configured; nothing was created."""


async def check_pod_config(
    config: RunPodJobConfiguration,
    env: dict[str, str],
    parameters: dict[str, Any],
    runpod: RunPodClient,
    probe: Probe = registry_probe.anonymous_access,
    log: logging.Logger | logging.LoggerAdapter = logger,
) -> None:
    """Raise PodConfigError naming every problem (and its fix) of this pod's configuration."""
    problems = [
        await api_url_problem(env.get("PREFECT_API_URL"), config.allow_private_api_url),
        plain_credentials_problem(env),
        s3_credentials_problem(parameters, env),
        await image_problem(config, runpod, probe, log),
    ]
    found = [problem for problem in problems if problem]
    if found:
        raise PodConfigError("; ".join(found))


async def api_url_problem(url: str | None, allow_private: bool) -> str | None:
    """Why pods could not reach the Prefect API at `url`, or None."""
    if not url:
        return (
            "pods get no PREFECT_API_URL: set it for the worker (Prefect Cloud, or a server "
            "at an address pods can reach)"
        )
    host = urlsplit(url).hostname or ""
    if allow_private:
        return None
    addresses = await _addresses(host)
    if addresses and all(_not_public(address) for address in addresses):
        return (
            f"PREFECT_API_URL {url} is a loopback or private address that a RunPod pod cannot "
            "reach: use Prefect Cloud or a server at a public address (set PREFECT_API_URL, or "
            "the job variable env.PREFECT_API_URL), or set allow_private_api_url when the pods "
            "can reach it (global networking, a VPN)"
        )
    return None


async def _addresses(host: str) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """The IP addresses `host` stands for (a literal, `localhost`, or a DNS lookup); [] when
    the name does not resolve here (then nothing is refused: the worker cannot tell)."""
    if host == "localhost" or host.endswith(".localhost"):
        return [ipaddress.ip_address("127.0.0.1")]
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        with anyio.fail_after(5):
            infos = await anyio.to_thread.run_sync(socket.getaddrinfo, host, None)
    except (OSError, TimeoutError):
        return []
    return [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]


def _not_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return (
        address.is_loopback
        or address.is_private
        or address.is_link_local
        or address.is_unspecified
        or address.is_reserved
    )


def is_sensitive(name: str) -> bool:
    """Whether a variable name looks like a credential (`AWS_SECRET_ACCESS_KEY`, `HF_TOKEN`,
    `PREFECT_API_KEY`, `PREFECT_API_AUTH_STRING`; not `TOKENIZERS_PARALLELISM`)."""
    return any(part in SENSITIVE_PARTS for part in name.upper().split("_"))


def plain_credentials_problem(env: dict[str, str]) -> str | None:
    """Credentials that would reach the pod as plain values (in RunPod's pod record)."""
    plain = sorted(k for k, v in env.items() if is_sensitive(k) and not is_secret_ref(v))
    if not plain:
        return None
    example = ", ".join(f'"{name}": "{name.lower()}"' for name in plain[:2])
    return (
        f"{', '.join(plain)} would reach the pod in plain text: store each as a RunPod secret "
        f"(console: Secrets) and map it in the job variable `secrets`, e.g. {{{example}}}"
    )


def mentions_s3(value: Any) -> bool:
    """Whether a flow run parameter (nested) names an `s3://` URI."""
    if isinstance(value, str):
        return value.startswith("s3://") or "=s3://" in value
    if isinstance(value, dict):
        return any(mentions_s3(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(mentions_s3(v) for v in value)
    return False


def s3_credentials_problem(parameters: dict[str, Any], env: dict[str, str]) -> str | None:
    """A flow run that reads or writes s3:// in a pod without S3 credentials."""
    if not mentions_s3(parameters):
        return None
    missing = [name for name in S3_CREDENTIALS if not env.get(name)]
    if not missing:
        return None
    profile = ""
    if os.environ.get("AWS_PROFILE") or Path("~/.aws/credentials").expanduser().exists():
        profile = " (the worker's AWS profile in ~/.aws is not forwarded to pods)"
    return (
        f"the flow run uses s3:// but the pod gets no {' or '.join(missing)}{profile}: create "
        "RunPod secrets for the S3 keys and map them in the job variable `secrets`, e.g. "
        '{"AWS_ACCESS_KEY_ID": "aws_access_key_id", "AWS_SECRET_ACCESS_KEY": '
        '"aws_secret_access_key"}'
    )


async def image_problem(
    config: RunPodJobConfiguration,
    runpod: RunPodClient,
    probe: Probe,
    log: logging.Logger | logging.LoggerAdapter,
) -> str | None:
    """An image RunPod could not pull: unknown credential id, or private without one."""
    if config.registry_auth_id:
        if await runpod.get_registry(config.registry_auth_id) is None:
            return (
                f"registry_auth_id {config.registry_auth_id!r} is no container registry "
                "credential of this RunPod account: create one (console: Container Registry "
                "Auth, or POST /v2/registries) and use its id"
            )
        return None
    access, detail = await probe(config.image)
    if access is registry_probe.Access.UNKNOWN:
        log.warning("Could not check that image %s is pullable: %s", config.image, detail)
        return None
    if access is registry_probe.Access.PUBLIC:
        return None
    return (
        f"image {config.image} cannot be pulled without credentials ({detail}): push it to a "
        "public repository, or add a RunPod container registry credential and set the job "
        "variable `registry_auth_id`"
    )
