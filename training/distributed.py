"""Multi-process training under torchrun: process group, DDP, FSDP2, small collectives.

torchrun sets RANK, LOCAL_RANK and WORLD_SIZE; without them this is a single process and every
helper degrades to a no-op. Backend: NCCL on GPUs, gloo on CPU (tests run 2 CPU ranks).
"""

from __future__ import annotations

import argparse
import datetime
import gc
import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import nn

from smelt import errors
from smelt.errors import ConfigError

log = logging.getLogger(__name__)

T = TypeVar("T")


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
    """Destroy the process group, last: drop every DDP wrapper of it first (`Trainer.unwrap`).

    Why: whichever object lets go of a gloo group last runs its destructor, which joins the
    group's threads. A DDP reducer lets go with the GIL held, while a gloo thread may still be
    freeing the tensors of the final collective, which needs the GIL: the rank hangs for good.
    The group's own Python handle releases the GIL first, so it must be the last holder; the
    collection below frees wrappers that only a reference cycle still holds."""
    if dist.is_initialized():
        gc.collect()
        dist.destroy_process_group()


def entry_point(
    argv: list[str] | None,
    prog: str,
    doc: str | None,
    config_type: Any,
    run: Callable[[Any], T],
    report: Callable[[T], list[str]],
) -> int:
    """`main` of a torchrun entry point: `config_type`'s flags (and `--debug`), logging at
    WARNING, a `SmeltError` as `error: ...` and exit status 2 (raised with `--debug`), and
    rank 0 printing `report(result)`; no Prefect. `config_type` has `add_arguments(parser)`
    and `from_args(args)` (`TrainConfig`, `SFTConfig`)."""
    parser = argparse.ArgumentParser(prog=prog, description=(doc or "").split("\n")[0])
    config_type.add_arguments(parser)
    parser.add_argument("--debug", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        result = run(config_type.from_args(args))
    except errors.SmeltError as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if int(os.environ.get("RANK", "0")) == 0:
        print("\n".join(report(result)))
    return 0


def exit_code(code: int) -> int:
    """`code`, for `sys.exit` at the end of a torchrun entry point; a rank of a multi-rank
    run instead leaves at once with it, after flushing its output and logs.

    Why: every collective is over by then (the ranks met at a barrier and the process group
    is destroyed), but interpreter finalization can still deadlock on a thread torch or gloo
    left behind; the peers have exited, torchrun waits for this rank, and the run never ends.
    Nothing is lost: metrics, checkpoints and uploads were closed before the barrier."""
    if not under_torchrun() or int(os.environ["WORLD_SIZE"]) <= 1:
        return code
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    logging.shutdown()
    os._exit(code)


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


def on_main(work: Callable[[], T], info: DistInfo) -> T | None:
    """`work()` on rank 0 (its result there, None on the other ranks). An error it raises is
    raised on every rank (there as the same `SmeltError`, or a plain one), so that no peer
    waits for a rank that gave up."""
    if not info.enabled:
        return work()
    result: T | None = None
    failure: Exception | None = None
    if info.is_main:
        try:
            result = work()
        except Exception as exc:  # noqa: BLE001 - re-raised below, on every rank
            failure = exc
    outcome = broadcast_json(
        None if failure is None else [type(failure).__name__, str(failure)], info
    )
    if failure is not None:
        raise failure
    if outcome is not None:
        raise getattr(errors, outcome[0], errors.SmeltError)(outcome[1])
    return result


class ModelState:
    """The model as a checkpoint component: weights by name. Under FSDP the full tensors are
    gathered to rank 0's CPU when saving (a collective: every rank calls it), and each rank
    takes its shards of the full state when loading."""

    def __init__(self, model: nn.Module, fsdp: bool) -> None:
        self.model, self.fsdp = model, fsdp

    def state_dict(self) -> dict[str, Any]:
        if not self.fsdp:
            return dict(self.model.state_dict())
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            get_model_state_dict,
        )

        options = StateDictOptions(full_state_dict=True, cpu_offload=True)
        return get_model_state_dict(self.model, options=options)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not self.fsdp:
            self.model.load_state_dict(state)
            return
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            set_model_state_dict,
        )

        set_model_state_dict(self.model, state, options=StateDictOptions(full_state_dict=True))
