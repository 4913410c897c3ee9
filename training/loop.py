"""The training recipe: build, restore, then for each step: batch, forward, backward, step,
log, checkpoint, until done.

    python -m smelt.training.loop --shards URI --output URI --preset test ...
    torchrun --nproc-per-node 2 -m smelt.training.loop --shards URI --output URI ...

take the same flags as `smelt train` (which runs this function inside the `train` Prefect flow,
and calls it directly when it finds itself under torchrun). Every concern lives in its own
component (config, preflight, checkpoint manager, optim, schedule, metrics, distributed, rng,
loader); this module only puts them in order.
"""

from __future__ import annotations

import contextlib
import logging
import math
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from smelt import storage
from smelt.errors import ConfigError, SmeltError
from smelt.model.decoder import Decoder
from smelt.prep.shard_format import Manifest
from smelt.training import conversations, distributed, optim, preflight, warm_start
from smelt.training.architecture import build_model_config
from smelt.training.config import TrainConfig
from smelt.training.distributed import DistInfo, ModelState
from smelt.training.manager import CheckpointManager, Progress, UploadsPendingError
from smelt.training.metrics import MetricsLogger, Throughput, peak_flops, read_metrics
from smelt.training.mixture import MixtureLoader
from smelt.training.optim import OptimizerState
from smelt.training.rng import RNGState, seed_all
from smelt.training.schedule import LRSchedule
from smelt.training.sources import open_training_data
from smelt.training.validation import validation_batches, validation_possible

log = logging.getLogger(__name__)

StepCallback = Callable[[dict[str, Any]], None]
SIGTERM_UPLOAD_WAIT_S = 3.0  # after SIGTERM or an error: a short wait, then exit
# (model, step) -> metrics merged into that step's record, every eval_every steps (the
# `--eval-task` evaluator of smelt.evaluation.in_training; any callable of that shape works)
StepEvaluator = Callable[[nn.Module, int], dict[str, float]]


class TrainingDivergedError(SmeltError):
    """The loss became NaN or infinite."""


@dataclass
class TrainResult:
    output: str
    step: int
    tokens: int
    resumed_from: int | None
    loss: float | None = None
    val_loss: float | None = None
    checkpoints: list[int] = field(default_factory=list)
    checkpoint_stalls_s: list[float] = field(default_factory=list)  # loop blocked per checkpoint
    seconds: float = 0.0  # the whole call, setup and final uploads included
    loop_seconds: float = 0.0  # the step loop alone (steps, logging, eval, checkpoint captures)
    already_done: bool = False  # the run had reached --max-steps before this call
    data: dict[str, Any] = field(default_factory=dict)  # the mixture drawn (per source, phase)

    def summary(self) -> str:
        done = "already trained" if self.already_done else "trained"
        return f"{done} to step {self.step} ({self.tokens} tokens), loss {self.loss}"


def train(
    config: TrainConfig,
    on_step: StepCallback | None = None,
    evaluator: StepEvaluator | None = None,
) -> TrainResult:
    """Run (or resume) training; `on_step` receives a metrics record every `log_every` steps,
    `evaluator` (model, step) -> metrics every `eval_every` steps.

    Raises `UploadsPendingError` (after every rank finished) when checkpoints of an s3://
    run are still only local once the bounded wait for their upload ran out."""
    if config.eval_tasks and evaluator is None:
        raise ConfigError("--eval-task needs `smelt train` (or torchrun -m smelt.cli.main train)")
    info = distributed.init(config.device)
    trainer = None
    try:
        trainer = Trainer(config, info, on_step, evaluator)
        result = trainer.run()
        # Leave together: a rank that tears down its process group while a peer is still
        # finishing (rank 0 writes the last checkpoint) can abort the peer at exit. Only on
        # success: after an error the peers may never arrive.
        distributed.barrier()
    finally:
        if trainer is not None:
            trainer.unwrap()
        distributed.shutdown()
    if trainer.not_uploaded is not None:
        raise trainer.not_uploaded
    return result


class Trainer:
    """One training run on one rank; `run()` is the recipe."""

    def __init__(
        self,
        config: TrainConfig,
        info: DistInfo,
        on_step: StepCallback | None,
        evaluator: StepEvaluator | None = None,
    ) -> None:
        self.config, self.info, self.on_step, self.evaluator = config, info, on_step, evaluator
        self.device = distributed.resolve_device(config.device, info)
        self.progress = Progress()
        self.result = TrainResult(storage.normalize(config.output), 0, 0, None)
        self.not_uploaded: UploadsPendingError | None = None

    # ---- the recipe ------------------------------------------------------------------------

    def run(self) -> TrainResult:
        started = time.perf_counter()
        if self.config.num_threads:
            torch.set_num_threads(self.config.num_threads)
        self.data = open_training_data(self.config)
        self.prepare(self.data.primary)
        with self.finishing():
            loop_started = time.perf_counter()
            if self.progress.step >= self.config.max_steps or self.data_finished():
                self.already_done()
            self.loop()
            self.result.loop_seconds = time.perf_counter() - loop_started
        self.result.seconds = time.perf_counter() - started
        return self.result

    def prepare(self, manifest: Manifest) -> None:
        """Build, check, restore, and only then write: a refused run changes nothing."""
        cfg, info = self.config, self.info
        self.base = warm_start.find_base(cfg.init_from) if cfg.init_from else None
        self.model_config = build_model_config(cfg, manifest.vocab_size, self.base)
        self.data.check_seq_len(self.model_config.max_seq_len)
        self.build()
        self.checkpoints = self.checkpoint_manager(manifest)
        plan = distributed.on_main(
            lambda: preflight.check(
                cfg, self.checkpoints, manifest, self.model_config, info.world_size
            ),
            info,
        )
        resumed = distributed.broadcast_json(plan.resume_step if plan else None, info)
        self.checkpoints.restore(resumed)
        if resumed is None and self.base is not None:  # a fresh run starts from the base
            weights = warm_start.base_weights(self.base, info)
            self.checkpoints.components["model"].load_state_dict(weights)
        distributed.on_main(plan.apply if plan else lambda: None, info)
        self.checkpoints.start()
        self.result.resumed_from = resumed
        self.metrics = MetricsLogger(
            self.checkpoints.local.metrics, self.checkpoints.local.tensorboard, info.is_main
        )
        self.has_val = validation_possible(self.config, manifest, self.info.is_main)
        if info.is_main and resumed is None and (note := cfg.schedule_note()):
            log.warning(note)

    def loop(self) -> None:
        cfg = self.config
        throughput = Throughput(
            self.raw_model.estimate_flops_per_token(cfg.seq_len),
            peak_flops(self.device, cfg.peak_flops),
            self.info.world_size,
        )
        while self.progress.step < cfg.max_steps and not self.data_finished():
            throughput.start()
            lr = self.schedule.lr_at(self.progress.step)
            loss, grad_norm, step_tokens = self.train_step(lr)
            self.progress.step += 1
            self.progress.tokens += step_tokens
            throughput.stop(step_tokens)
            record = self.log_step(loss, lr, grad_norm, throughput.report())
            last = self.progress.step == cfg.max_steps or self.data_finished()
            self.checkpoints.save(self.progress.step, last_step=last)
            self.report(record, last)
        if self.progress.step < cfg.max_steps and self.info.is_main:
            log.warning(
                "training stopped at step %d of %d: the data plan ended (its last phase is over)",
                self.progress.step,
                cfg.max_steps,
            )

    def unwrap(self) -> None:
        """Drop the DDP/compiled wrappers (the trained weights stay in `raw_model`) while the
        process group is alive: see `distributed.shutdown`. A run refused before its model was
        built has none."""
        if hasattr(self, "raw_model"):
            self.model = self.forward = self.raw_model

    def should(self, every: int) -> bool:
        """Every `every` steps and at the last one; never when `every` is 0."""
        step = self.progress.step
        return every > 0 and (step % every == 0 or step == self.config.max_steps)

    # ---- setup -----------------------------------------------------------------------------

    def build(self) -> None:
        """Model, optimizer, schedule and loader, fresh from the seed (nothing is written)."""
        cfg, info = self.config, self.info
        seed_all(cfg.seed)
        self.raw_model = Decoder(self.model_config).to(self.device)
        self.raw_model.set_activation_checkpointing(cfg.activation_checkpointing)
        self.model = distributed.wrap(self.raw_model, info, self.device, cfg.fsdp)
        self.forward = torch.compile(self.model) if cfg.compile else self.model
        self.optimizer = optim.build_optimizer(self.raw_model, cfg, self.device)
        self.schedule = LRSchedule.from_config(cfg)
        self.autocast_dtype = _autocast_dtype(cfg.dtype, self.device)
        if cfg.batch_source == "conversations":  # fine-tuning data (`smelt sft`)
            self.loader = conversations.ConversationLoader(
                self.data.primary.root,
                "train",
                cfg.batch_size,
                cfg.seq_len,
                cfg.seed,
                info.rank,
                info.world_size,
                cfg.end_of_turn_weight,
            )
            return
        self.loader = MixtureLoader(
            self.data,
            cfg.batch_size,
            cfg.seed,
            info.rank,
            info.world_size,
            cfg.grad_accum,
            with_doc_ids=cfg.doc_mask,
        )

    def checkpoint_manager(self, manifest: Manifest) -> CheckpointManager:
        """The manager over every piece of training state; it waits for its host copy
        before each optimizer update (a step pre-hook: the update changes those tensors)."""
        cfg = self.config
        fsdp = cfg.fsdp and self.info.enabled
        manager = CheckpointManager(
            cfg.output,
            cache_dir=cfg.cache_dir,
            components={
                "model": ModelState(self.raw_model, fsdp),
                "optimizer": OptimizerState(self.raw_model, self.optimizer, full=fsdp),
                "schedule": self.schedule,
                "loader": self.loader,
                "rng": RNGState(),
                "progress": self.progress,
            },
            per_rank=("loader", "rng"),
            interval=cfg.checkpoint_every,
            keep_last=cfg.keep_last,
            model_config=self.model_config,
            facts={"train_config": cfg.to_dict(), "tokenizer_sha256": manifest.tokenizer_sha256},
            info=self.info,
        )
        self.optimizer.register_step_pre_hook(manager.wait_for_copy)
        return manager

    def already_done(self) -> None:
        """A rerun of a finished run: report where it stands (its last logged losses)."""
        self.result.already_done = True
        self.result.step, self.result.tokens = self.progress.step, self.progress.tokens
        records = read_metrics(self.checkpoints.local.metrics) if self.info.is_main else []
        last = [r for r in records if r["step"] == self.progress.step]
        if last:
            self.result.loss = last[-1].get("loss")
            self.result.val_loss = last[-1].get("val_loss")
        log.info("%s is already trained to step %d", self.result.output, self.progress.step)

    @contextlib.contextmanager
    def finishing(self) -> Iterator[None]:
        """On any exit: close the metrics, finish the checkpoint writes, and wait for the
        uploads at most --upload-timeout seconds (after SIGTERM or an error: a few)."""
        previous = None
        if self.info.is_main and threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGTERM, _raise_system_exit)
        wait = self.config.upload_timeout
        failed = False
        try:
            yield
        except BaseException:
            wait, failed = min(wait, SIGTERM_UPLOAD_WAIT_S), True
            raise
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
            self.metrics.close()
            left = self.checkpoints.close(wait)
            self.result.checkpoints = self.checkpoints.written_steps
            self.result.checkpoint_stalls_s = self.checkpoints.stalls
            if summary := getattr(self.loader, "summary", None):
                self.result.data = summary()
            self.loader.close()
            if left:
                self.not_uploaded = self.checkpoints.pending_error(left, wait)
                if failed:  # the run ends with another error: say it here, once
                    log.error("%s", self.not_uploaded)

    # ---- one step --------------------------------------------------------------------------

    def train_step(self, lr: float) -> tuple[float, float | None, int]:
        """Forward/backward over `grad_accum` micro-batches, clip, step. Returns the loss (mean
        over ranks), the gradient norm and the step's tokens (all ranks)."""
        cfg = self.config
        self.model.train()
        total = torch.zeros((), device=self.device)
        tokens = 0
        for micro in range(cfg.grad_accum):
            batch = self.loader.next_batch()
            tokens += batch.inputs.numel() * self.info.world_size
            last = micro == cfg.grad_accum - 1
            with self.sync_context(last), self.autocast():
                loss = self.forward(
                    batch.inputs.to(self.device, non_blocking=True),
                    targets=batch.targets.to(self.device, non_blocking=True),
                    doc_ids=_maybe(batch.doc_ids, self.device),
                    loss_weights=_maybe(batch.weights, self.device),
                ).loss
                loss = loss / cfg.grad_accum
            loss.backward()
            total += loss.detach()
        mean_loss = distributed.mean_across(total, self.info).item()
        if not math.isfinite(mean_loss):  # the same value on every rank (all-reduced)
            raise TrainingDivergedError(
                f"loss became {mean_loss} at step {self.progress.step + 1} (run "
                f"{self.result.output}); training stopped before applying that update. The "
                f"last good checkpoint is step {self.checkpoints.last_saved}; resume from it "
                "with a lower --lr or more --warmup-steps"
            )
        grad_norm = None
        if cfg.grad_clip > 0:
            norm = nn.utils.clip_grad_norm_(self.raw_model.parameters(), cfg.grad_clip)
            grad_norm = float(norm.full_tensor() if hasattr(norm, "full_tensor") else norm)
        optim.set_lr(self.optimizer, lr)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return mean_loss, grad_norm, tokens

    def log_step(
        self, loss: float, lr: float, grad_norm: float | None, speed: dict[str, float]
    ) -> dict[str, Any]:
        """One metrics.jsonl record for the step just taken (validation loss when due)."""
        record = {
            "step": self.progress.step,
            "loss": loss,
            "lr": lr,
            "tokens": self.progress.tokens,
            "grad_norm": grad_norm,
            **speed,
            **self.data_metrics(),
        }
        stall = self.checkpoints.pop_stall()
        if stall is not None:
            record["ckpt_stall_s"] = round(stall, 6)
        if self.has_val and self.should(self.config.eval_every):
            record["val_loss"] = self.result.val_loss = self.evaluate()
        if self.evaluator is not None and self.should(self.config.eval_every):
            record.update(self.evaluator(self.raw_model, self.progress.step))
        self.metrics.log(record)
        self.result.loss, self.result.step = loss, self.progress.step
        self.result.tokens = self.progress.tokens
        return record

    def report(self, record: dict[str, Any], last: bool) -> None:
        """The progress callback, every `log_every` steps and at the last (rank 0)."""
        step, cfg = self.progress.step, self.config
        if self.on_step and self.info.is_main and (step % cfg.log_every == 0 or last):
            self.on_step({**record, "max_steps": cfg.max_steps})

    def data_metrics(self) -> dict[str, Any]:
        """Tokens per source, epochs and phase, from a loader that reports them."""
        report = getattr(self.loader, "metrics", None)
        return report() if report else {}

    def data_finished(self) -> bool:
        """Whether the loader's data plan has ended (its last phase is over)."""
        return bool(getattr(self.loader, "finished", False))

    def sync_context(self, last_micro_batch: bool) -> contextlib.AbstractContextManager:
        """DDP all-reduces gradients only on the last micro-batch of an accumulation."""
        if not last_micro_batch and hasattr(self.model, "no_sync"):
            return self.model.no_sync()
        return contextlib.nullcontext()

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    @torch.no_grad()
    def evaluate(self) -> float:
        self.model.eval()
        losses = []
        for batch in validation_batches(self.config, self.data.primary.root):
            with self.autocast():
                losses.append(
                    self.forward(
                        batch.inputs.to(self.device),
                        targets=batch.targets.to(self.device),
                        doc_ids=_maybe(batch.doc_ids, self.device),
                        loss_weights=_maybe(batch.weights, self.device),
                    ).loss
                )
        self.model.train()
        return float(torch.stack(losses).mean())


def _maybe(tensor: torch.Tensor | None, device: torch.device) -> torch.Tensor | None:
    return None if tensor is None else tensor.to(device, non_blocking=True)


def _autocast_dtype(name: str, device: torch.device) -> torch.dtype | None:
    if name == "auto":
        return torch.bfloat16 if device.type == "cuda" else None
    return None if name == "float32" else getattr(torch, name)


def _raise_system_exit(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    """`python -m smelt.training.loop` / torchrun entry point (no Prefect)."""
    return distributed.entry_point(
        argv, "smelt.training.loop", __doc__, TrainConfig, train, lambda r: [r.summary()]
    )


if __name__ == "__main__":
    sys.exit(distributed.exit_code(main()))
