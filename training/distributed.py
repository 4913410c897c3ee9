"""Multi-process training under torchrun: process group, DDP, FSDP2, small collectives.

torchrun sets RANK, LOCAL_RANK and WORLD_SIZE; without them this is a single process and every
helper degrades to a no-op. Backend: NCCL on GPUs, gloo on CPU (tests run 2 CPU ranks).
"""

from __future__ import annotations

import datetime
import logging
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from smelt.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def under_torchrun() -> bool:
    return "WORLD_SIZE" in os.environ and "RANK" in os.environ


def resolve_device(name: str, info: DistInfo) -> torch.device:
    """'auto' -> the rank's GPU when CUDA is available, else CPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        name = f"cuda:{info.local_rank}"
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("--device cuda requested but no CUDA device is available")
        torch.cuda.set_device(device)
    return device


def init(device_name: str = "auto") -> DistInfo:
    """Join the torchrun process group (if any)."""
    if not under_torchrun() or int(os.environ["WORLD_SIZE"]) == 1:
        return DistInfo()
    info = DistInfo(
        int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", 0)), int(os.environ["WORLD_SIZE"])
    )
    if not dist.is_initialized():
        wants_cuda = device_name.startswith("cuda") or (
            device_name == "auto" and torch.cuda.is_available()
        )
        backend = "nccl" if wants_cuda else "gloo"
        if wants_cuda:
            torch.cuda.set_device(info.local_rank)
        dist.init_process_group(backend=backend, timeout=datetime.timedelta(minutes=30))
        log.info("rank %d/%d joined (%s)", info.rank, info.world_size, backend)
    return info


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def wrap(model: nn.Module, info: DistInfo, device: torch.device, fsdp: bool) -> nn.Module:
    """DDP (replicated) or FSDP2 `fully_shard` (each block, then the root) across ranks."""
    if fsdp:
        from torch.distributed.fsdp import fully_shard

        if not info.enabled:
            log.warning("--fsdp without torchrun: running unsharded")
            return model
        for block in getattr(model, "layers", []):
            fully_shard(block)
        fully_shard(model)
        return model
    if not info.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(
        model, device_ids=[device.index] if device.type == "cuda" else None
    )


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def all_gather_json(value: Any, info: DistInfo) -> list[Any]:
    """Every rank's JSON-safe `value`, in rank order (the loader and RNG states)."""
    if not info.enabled:
        return [value]
    gathered: list[Any] = [None] * info.world_size
    dist.all_gather_object(gathered, value)
    return gathered


def broadcast_json(value: Any, info: DistInfo) -> Any:
    """Rank 0's `value` on every rank (e.g. the checkpoint chosen for resuming)."""
    if not info.enabled:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def mean_across(value: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Average a scalar tensor over ranks (for logging the global loss)."""
    if not info.enabled:
        return value
    value = value.detach().clone()
    dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return value / info.world_size
