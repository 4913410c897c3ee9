"""`Checkpointer`: the training loop's one handle on checkpointing.

`save()` captures references to the state (weights, optimizer moments, schedule, every rank's
loader position and RNG states), starts the host copy in the background and queues the snapshot
for the uploader; `before_update()` is called before the next optimizer step and waits for that
copy if it is not done yet. The loop is blocked only for the capture plus that wait: the stall
this measures and reports. FSDP gathers the full state to rank 0 synchronously (collectives).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from smelt.model.config import ModelConfig
from smelt.training import distributed, optim, rng
from smelt.training.checkpoint import Snapshot
from smelt.training.config import TrainConfig
from smelt.training.distributed import DistInfo
from smelt.training.run_dir import RunDir
from smelt.training.uploader import CheckpointUploader


class Checkpointer:
    def __init__(
        self,
        run_dir: RunDir,
        info: DistInfo,
        config: TrainConfig,
        model_config: ModelConfig,
        fsdp: bool,
        resumed_step: int | None,
        run_files: Callable[[], list[str]],
    ) -> None:
        self.info, self.config, self.model_config, self.fsdp = info, config, model_config, fsdp
        self.uploader = None
        if info.is_main:
            self.uploader = CheckpointUploader(
                run_dir.local_root, run_dir.remote, config.keep_last, run_files=run_files
            )
            if resumed_step is not None and not run_dir.remote_has(resumed_step):
                self.uploader.upload_existing(resumed_step)  # the crash came before its upload
        self.last_saved = resumed_step
        self.stalls: list[float] = []
        self._pending: Snapshot | None = None
        self._capture_s: float | None = None

    def save(
        self,
        step: int,
        tokens: int,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        loader: Any,
        schedule: Any,
    ) -> None:
        """Capture the state after `step` and queue it (the copy runs in the background)."""
        started = time.perf_counter()
        model_state = self._model_state(model)
        opt_tensors, opt_meta = optim.state_tensors(model, optimizer, full=self.fsdp)
        ranks = distributed.all_gather_json(
            {"rank": self.info.rank, "loader": loader.state_dict(), "rng": rng.capture()}, self.info
        )
        if self.uploader is not None:
            trainer = {
                "step": step,
                "tokens": tokens,
                "world_size": self.info.world_size,
                "schedule": schedule.state_dict(),
                "model_config": self.model_config.to_dict(),
                "train_config": self.config.to_dict(),
            }
            documents = {
                "trainer.json": trainer,
                "ranks.json": ranks,
                "optimizer.json": opt_meta,
                "config.json": self.model_config.to_dict(),
            }
            snapshot = Snapshot(step, self.model_config, model_state, opt_tensors, documents)
            snapshot.start_copy()
            self.uploader.submit(snapshot)
            self._pending = snapshot
        self._capture_s = time.perf_counter() - started
        self.last_saved = step

    def before_update(self) -> float | None:
        """Wait for the pending host copy (parameters are about to change); the stall or None."""
        if self._capture_s is None:
            return None
        started = time.perf_counter()
        if self._pending is not None:
            self._pending.wait_copied()
            self._pending = None
        stall = self._capture_s + time.perf_counter() - started
        self._capture_s = None
        self.stalls.append(stall)
        return stall

    def close(self) -> list[int]:
        """Finish the last copy, mirror the run files, wait for every write and upload."""
        if self._pending is not None:
            self._pending.wait_copied()
        if self.uploader is None:
            return []
        self.uploader.sync_run_files()
        self.uploader.close()
        return list(self.uploader.written_steps)

    def _model_state(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """Weights by name: references, or (FSDP) the full tensors gathered to rank 0's CPU."""
        if not self.fsdp:
            return dict(model.state_dict())
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            get_model_state_dict,
        )

        options = StateDictOptions(full_state_dict=True, cpu_offload=True)
        return get_model_state_dict(model, options=options)
