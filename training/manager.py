"""`CheckpointManager`: the one owner of a run's checkpoints.

It receives the training state as one dict of components, each exposing `state_dict()` and
`load_state_dict()` (model, optimizer, schedule, data loader, RNG, progress), and owns the
policy: which steps are saved (`save(step, last_step=...)`), where (the run's layout, local or
an s3:// output with a local mirror), how (a snapshot copied to host memory in the
background, written and uploaded by `CheckpointWriter`, marker last), which are kept
(`keep_last`, pruned marker first), and how one is found and fetched again (the newest
complete checkpoint, local or remote; remote ones downloaded into the mirror and verified).

Components map onto the files of `smelt-checkpoint-v1` (see checkpoint.py):

    "model"            -> model.safetensors (+ config.json)
    "optimizer"        -> optimizer.safetensors (its "tensors") + optimizer.json (the rest)
    "progress"         -> trainer.json, top level ("step", "tokens")
    any other          -> trainer.json[name]                 (one state for the whole run)
    per-rank ones      -> ranks.json[rank][name]             (gathered from every rank)
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from smelt import storage
from smelt.errors import InputError, IntegrityError, SmeltError
from smelt.model.config import ModelConfig
from smelt.training import checkpoint, distributed
from smelt.training.checkpoint import RunLayout, Snapshot, StepLayout
from smelt.training.distributed import DistInfo
from smelt.training.writer import CheckpointWriter, NotUploaded

log = logging.getLogger(__name__)

MODEL, OPTIMIZER, PROGRESS = "model", "optimizer", "progress"


class Stateful(Protocol):
    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


@dataclass
class Progress:
    """How far training got: optimizer steps taken and training tokens seen."""

    step: int = 0
    tokens: int = 0

    def state_dict(self) -> dict[str, Any]:
        return {"step": self.step, "tokens": self.tokens}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step, self.tokens = int(state["step"]), int(state["tokens"])


class UploadsPendingError(SmeltError):
    """Training ended but some checkpoints of an s3:// run exist only in the local mirror."""


class CheckpointManager:
    """Checkpoints of the run at `output` (a local path or s3:// URI).

    Without components it only finds, fetches and pushes (what `open_checkpoint` and
    `smelt push` need); `save` and `restore` need the components.
    """

    def __init__(
        self,
        output: str,
        *,
        cache_dir: str | None = None,
        components: Mapping[str, Stateful] | None = None,
        per_rank: tuple[str, ...] = (),
        interval: int = 0,
        keep_last: int = 3,
        model_config: ModelConfig | None = None,
        facts: Mapping[str, Any] | None = None,
        info: DistInfo | None = None,
    ) -> None:
        self.output = storage.normalize(output)
        self.run = RunLayout(self.output)  # where the run's record lives
        self.local = RunLayout(checkpoint.local_root(self.output, cache_dir))
        self.remote = self.run if storage.is_s3(self.output) else None
        self.components = dict(components or {})
        self.per_rank = per_rank
        self.interval, self.keep_last = interval, keep_last
        self.model_config = model_config
        self.facts = dict(facts or {})  # recorded in every trainer.json (configs, tokenizer)
        self.info = info or DistInfo()
        self.writer: CheckpointWriter | None = None
        self.last_saved: int | None = None
        self.stalls: list[float] = []
        self._pending: Snapshot | None = None
        self._capture_s: float | None = None
        self._stall: float | None = None

    # ---- finding and fetching --------------------------------------------------------------

    def complete_steps(self) -> dict[int, StepLayout]:
        """Complete checkpoints, remote and local; the local copy wins for equal steps."""
        found = checkpoint.complete_steps(self.remote.root) if self.remote else {}
        found.update(checkpoint.complete_steps(self.local.root))
        return {step: StepLayout(uri) for step, uri in sorted(found.items())}

    def newest(self) -> int | None:
        steps = self.complete_steps()
        return max(steps) if steps else None

    def fetch(self, step: int) -> StepLayout:
        """A verified local copy of checkpoint `step` (downloaded from S3 when needed)."""
        local = self.local.step(step)
        if local.marker.done():
            try:
                checkpoint.verify_local(local)
                return local
            except IntegrityError:
                if self.remote is None:
                    raise
                log.warning("cached checkpoint %s is damaged: downloading it again", local.root)
        remote = self.remote.step(step) if self.remote else None
        if remote is None or not remote.marker.done():
            raise InputError(f"no complete checkpoint step {step} in {self.output}")
        os.makedirs(self.local.root, exist_ok=True)
        return checkpoint.download(remote, local)

    def fetch_tokenizer(self) -> str | None:
        """A local copy of the run's tokenizer.json, or None when the run recorded none."""
        local = self.local.tokenizer
        if self.remote and storage.exists(self.remote.tokenizer):
            storage.get_file(self.remote.tokenizer, local)
        return local if os.path.exists(local) else None

    def discard(self) -> None:
        """Delete the run's checkpoints, metrics and record, everywhere (`--resume never
        --force`); each checkpoint's marker goes first."""
        for run in filter(None, [self.remote, self.local]):
            for step in checkpoint.complete_steps(run.root):
                checkpoint.delete(run.step(step))
            for uri in (run.metrics, run.run_file, run.tensorboard):
                storage.delete(uri, recursive=True)
        log.warning("discarded the previous run in %s", self.output)

    # ---- saving ----------------------------------------------------------------------------

    def start(self) -> None:
        """Start the background writer (rank 0) and queue the upload of every complete local
        checkpoint the remote lacks (a crash or an outage came before its upload)."""
        if not self.info.is_main:
            return
        self.writer = CheckpointWriter(self.local, self.remote, self.keep_last)
        for step in self.local_only():
            log.warning("checkpoint step %d is not on %s yet: uploading it", step, self.output)
            self.writer.upload(step)
        self.writer.sync_run_files()

    def local_only(self) -> list[int]:
        """Complete local checkpoints the remote lacks (none for a local run)."""
        if self.remote is None:
            return []
        remote = checkpoint.complete_steps(self.remote.root)
        return [s for s in checkpoint.complete_steps(self.local.root) if s not in remote]

    def due(self, step: int, last_step: bool = False) -> bool:
        """Every `interval` steps and at the last one; never when `interval` is 0."""
        return self.interval > 0 and (step % self.interval == 0 or last_step)

    def save(self, step: int, last_step: bool = False) -> bool:
        """Checkpoint the state after `step` if it is due: capture references (every rank),
        start the host copy and queue the write (rank 0); returns whether it saved."""
        if not self.due(step, last_step):
            return False
        started = time.perf_counter()
        shared = {n: c.state_dict() for n, c in self.components.items() if n not in self.per_rank}
        mine = {n: self.components[n].state_dict() for n in self.per_rank}
        ranks = distributed.all_gather_json({"rank": self.info.rank, **mine}, self.info)
        if self.writer is not None:
            snapshot = self._snapshot(step, shared, ranks)
            snapshot.start_copy()
            self.writer.submit(snapshot)
            self._pending = snapshot
        self._capture_s = time.perf_counter() - started
        self.last_saved = step
        return True

    def wait_for_copy(self, *_: Any) -> None:
        """Block until the pending host copy is done: registered as the optimizer's step
        pre-hook, since the update is about to change the tensors being copied."""
        if self._capture_s is None:
            return
        started = time.perf_counter()
        if self._pending is not None:
            self._pending.wait_copied()
            self._pending = None
        self._stall = self._capture_s + time.perf_counter() - started
        self._capture_s = None
        self.stalls.append(self._stall)

    def pop_stall(self) -> float | None:
        """Seconds the loop was blocked by the last checkpoint, once (for the metrics)."""
        stall, self._stall = self._stall, None
        return stall

    def close(self, timeout: float | None = None) -> NotUploaded:
        """Finish the last copy and every local write, mirror the run files, and wait for
        the uploads at most `timeout` seconds; returns what is still only local."""
        if self._pending is not None:
            self._pending.wait_copied()
        if self.writer is None:
            return NotUploaded()
        self.writer.sync_run_files()
        return self.writer.close(timeout)

    @property
    def written_steps(self) -> list[int]:
        return list(self.writer.written_steps) if self.writer else []

    def pending_error(self, left: NotUploaded, waited_s: float) -> UploadsPendingError:
        """The one-line error for uploads that did not finish: what, where, and how to push."""
        what = ", ".join(storage.basename(self.local.step(s).root) for s in left.steps)
        what = f"checkpoints {what}" if what else "the run files (metrics, TensorBoard)"
        return UploadsPendingError(
            f"{what} of {self.output} are only in its local copy {self.local.root}: S3 did "
            f"not take them within {waited_s:.0f}s; upload them with `smelt push --output "
            f"{self.output} --cache-dir {self.local.root}` (or run the same `smelt train` "
            "command again)"
        )

    def _snapshot(self, step: int, shared: dict[str, Any], ranks: list[dict[str, Any]]) -> Snapshot:
        """Lay the components' states out as the files of a step directory."""
        optimizer = dict(shared.pop(OPTIMIZER))
        optimizer_tensors = optimizer.pop("tensors")
        model = shared.pop(MODEL)
        trainer = {
            **shared.pop(PROGRESS),
            **shared,
            "world_size": self.info.world_size,
            "model_config": self.model_config.to_dict(),
            **self.facts,
        }
        documents = {
            StepLayout.TRAINER: trainer,
            StepLayout.RANKS: ranks,
            StepLayout.OPTIMIZER_GROUPS: optimizer,
            StepLayout.MODEL_CONFIG: self.model_config.to_dict(),
        }
        return Snapshot(step, self.model_config, model, optimizer_tensors, documents)

    # ---- restoring -------------------------------------------------------------------------

    def restore(self, step: int | None) -> None:
        """Load checkpoint `step` into every component on every rank (rank 0 fetches it)."""
        if step is None:
            return
        fetched = distributed.on_main(lambda: self.fetch(step).root, self.info)
        local = distributed.broadcast_json(fetched, self.info)
        loaded = checkpoint.load_local(StepLayout(local), verify=False)
        states: dict[str, Any] = {
            MODEL: loaded.model,
            OPTIMIZER: {"tensors": loaded.optimizer, **loaded.optimizer_groups},
            PROGRESS: {"step": loaded.step, "tokens": loaded.trainer["tokens"]},
        }
        for name in self.components:
            if name in states:
                continue
            source = loaded.ranks[self.info.rank] if name in self.per_rank else loaded.trainer
            if name not in source:
                raise IntegrityError(
                    f"checkpoint {local} holds no {name!r} state; resume it with the "
                    "version of smelt that wrote it, or use another --output"
                )
            states[name] = source[name]
        for name, component in self.components.items():
            component.load_state_dict(states[name])
        self.last_saved = loaded.step
        log.info("resumed from %s (step %d)", local, loaded.step)

    # ---- pushing ---------------------------------------------------------------------------

    def push(self) -> list[int]:
        """Upload what only the local copy holds: complete checkpoints (verified, marker
        last), then the run files. Returns the steps uploaded."""
        if self.remote is None:
            return []
        if not os.path.isdir(self.local.root):
            raise InputError(
                f"no local copy of {self.output} in {self.local.root}; pass the --cache-dir "
                "the run was trained with"
            )
        steps = self.local_only()
        try:
            for step in steps:
                local = self.local.step(step)
                checkpoint.verify_local(local)
                checkpoint.upload(local, self.remote.step(step))
                log.info("pushed checkpoint step %d to %s", step, self.output)
            for relative in self.local.run_files():
                storage.put_file(self.local.file(relative), self.remote.file(relative))
        except (OSError, SmeltError) as exc:
            raise InputError(f"pushing {self.output} failed ({exc}); run it again") from exc
        except Exception as exc:  # noqa: BLE001 - botocore's errors name the outage
            raise InputError(
                f"pushing {self.output} failed ({type(exc).__name__}: {exc}); check that S3 "
                "is reachable and run it again"
            ) from exc
        return steps


def locate(uri: str, cache_dir: str | None = None) -> tuple[StepLayout, CheckpointManager]:
    """A verified local copy of the checkpoint at `uri`: a run's newest complete checkpoint,
    or one `step_NNNNNNNN` directory (local or on S3), and the manager of its run."""
    uri = storage.normalize(uri)
    step = RunLayout.step_of(uri)
    if step is not None and StepLayout(uri).marker.done():
        manager = CheckpointManager(storage.parent(uri), cache_dir=cache_dir)
    else:
        manager = CheckpointManager(uri, cache_dir=cache_dir)
        step = manager.newest()
        if step is None:
            raise InputError(
                f"no complete checkpoint under {uri}: pass a run's --output or one "
                "of its step_NNNNNNNN directories"
            )
    return manager.fetch(step), manager
