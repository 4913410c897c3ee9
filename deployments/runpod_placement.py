"""Placing a flow run's pod: at most one pod per flow run, on the first GPU type that places.

A pod's name is deterministic (`smelt-<pool>-<flow run id>`), and that is what makes creation
idempotent. RunPod can create a pod and still answer 500 (or time out), so a create is never
simply repeated: before every attempt, and after every uncertain answer, the pods of that name
are looked up, and one that exists is adopted instead. Only when the lookups agree that no pod
of that name exists is the create tried again. Should two pods of the name ever exist (a pod
that became visible only after its retry), the oldest is kept and the others are terminated.

GPU fallback follows the spec's table for `POST /pods`: 400 (a rule, or no capacity for this
GPU type) and 403 (no access to that pool) move on to the next GPU type; 429 is retried by the
client after `Retry-After`; 402 (no balance) and 422 (a malformed body) stop at once.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from smelt.deployments.runpod_api import (
    CreateOutcomeUnknown,
    PodSpec,
    RequestRejected,
    RunPodClient,
    RunPodError,
    Sleep,
)

logger = logging.getLogger(__name__)


class NoCapacity(RunPodError):
    """No GPU type of the list could be placed."""


@dataclass(frozen=True)
class Placement:
    """The pod a flow run got, on which GPU type, and whether it was found rather than made."""

    pod: dict[str, Any]
    gpu_type: str
    adopted: bool

    @property
    def pod_id(self) -> str:
        return str(self.pod["id"])


@dataclass(frozen=True)
class PlacementPolicy:
    """How hard to look for a pod whose create had an unknown outcome, and how often to try
    one GPU type whose creates keep failing that way (the spec: retry 5xx with backoff)."""

    lookups: int = 4
    lookup_interval_s: float = 2.0
    attempts_per_gpu: int = 3


async def place_pod(
    runpod: RunPodClient,
    spec: PodSpec,
    gpu_types: Iterable[str],
    *,
    exclude_ids: frozenset[str] = frozenset(),
    policy: PlacementPolicy = PlacementPolicy(),
    sleep: Sleep | None = None,
    log: logging.Logger | logging.LoggerAdapter = logger,
) -> Placement:
    """Create (or adopt) the pod `spec.name`, trying `gpu_types` in order. Pods in
    `exclude_ids` (lost pods of the same name, being replaced) are never adopted."""
    wait = sleep or runpod.sleep
    refusals: list[str] = []
    for gpu_type in gpu_types:
        candidate = spec.for_gpu(gpu_type)
        for attempt in range(policy.attempts_per_gpu):
            existing = await adopt_existing(runpod, spec.name, exclude_ids, log)
            if existing is not None:
                return existing
            try:
                pod = await runpod.create_pod(candidate)
                return Placement(pod, gpu_type, adopted=False)
            except RequestRejected as exc:
                refusals.append(f"{gpu_type}: {exc.detail or exc}")
                log.warning("RunPod cannot place %s: %s", gpu_type, exc.detail or exc)
                break
            except CreateOutcomeUnknown as exc:
                log.warning("%s; looking the pod up by its name %s", exc, spec.name)
                for _ in range(policy.lookups):
                    await wait(policy.lookup_interval_s)
                    existing = await adopt_existing(runpod, spec.name, exclude_ids, log)
                    if existing is not None:
                        return existing
                if attempt + 1 == policy.attempts_per_gpu:
                    raise RunPodError(
                        f"RunPod answered {policy.attempts_per_gpu} creates of {spec.name!r} "
                        f"on {gpu_type} with errors and created no pod: {exc}"
                    ) from None
                log.warning("no pod %s exists after the error; creating it again", spec.name)
    tried = "; ".join(refusals) or "no GPU type given"
    raise NoCapacity(
        f"no RunPod pod could be placed for {spec.name!r} ({tried}); add GPU types to the "
        "`fallback_gpu_types` job variable, try `cloud_type: COMMUNITY`, or retry later"
    )


async def adopt_existing(
    runpod: RunPodClient,
    name: str,
    exclude_ids: frozenset[str] = frozenset(),
    log: logging.Logger | logging.LoggerAdapter = logger,
) -> Placement | None:
    """The existing pod called `name` (the oldest), with any younger duplicate terminated."""
    pods = [p for p in await runpod.pods_named(name) if str(p.get("id")) not in exclude_ids]
    if not pods:
        return None
    keep, *duplicates = pods
    for duplicate in duplicates:
        log.warning("Terminating duplicate RunPod pod %s of %s", duplicate.get("id"), name)
        await runpod.terminate_pod(str(duplicate["id"]))
    log.info("Adopting RunPod pod %s, which already exists as %s", keep.get("id"), name)
    gpu_type = str((keep.get("gpu") or {}).get("id") or "")
    return Placement(keep, gpu_type, adopted=True)
