"""The training recipe: build, restore, then step / log / evaluate / checkpoint until done.

    python -m smelt.training.loop --shards URI --output URI --preset test ...
    torchrun --nproc-per-node 2 -m smelt.training.loop --shards URI --output URI ...

take the same flags as `smelt train` (which runs this function inside the `train` Prefect flow,
and calls it directly when it finds itself under torchrun). Every concern lives in its own
component (config, optim, schedule, checkpoint, uploader, metrics, distributed, rng, loader);
this module only puts them in order.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from smelt.errors import ConfigError, SmeltError
from smelt.model.config import ModelConfig
from smelt.model.decoder import Decoder
from smelt.model.presets import DEFAULT_VOCAB, get_preset
from smelt.training import distributed, optim, rng
from smelt.training.checkpoint import LoadedCheckpoint
from smelt.training.checkpointer import Checkpointer
from smelt.training.config import TrainConfig
from smelt.training.distributed import DistInfo
from smelt.training.loader import ShardLoader, eval_batches
from smelt.training.metrics import MetricsLogger, Throughput, peak_flops
from smelt.training.resume import prepare_run
from smelt.training.run_dir import METRICS_FILE, RunDir
from smelt.training.schedule import LRSchedule
from smelt.training.shard_format import open_manifest

log = logging.getLogger(__name__)

StepCallback = Callable[[dict[str, Any]], None]
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


def train(
    config: TrainConfig,
    on_step: StepCallback | None = None,
    evaluator: StepEvaluator | None = None,
) -> TrainResult:
    """Run (or resume) training; `on_step` receives a metrics record every `log_every` steps."""
    if config.eval_tasks and evaluator is None:
        raise ConfigError("--eval-task needs `smelt train` (or torchrun -m smelt.cli.main train)")
    info = distributed.init(config.device)
    try:
        result = Trainer(config, info, on_step, evaluator).run()
        # Leave together: a rank that tears down its process group while a peer is still
        # finishing (rank 0 writes the last checkpoint) can abort the peer at exit. Only on
        # success: after an error the peers may never arrive.
        distributed.barrier()
        return result
    finally:
        distributed.shutdown()


def build_model_config(config: TrainConfig, vocab_size: int) -> ModelConfig:
    """The preset with overrides; its vocabulary follows the shards unless set explicitly."""
    overrides = dict(config.model_overrides)
    explicit = overrides.pop("vocab_size", None)
    base = get_preset(config.preset, **overrides)
    if explicit is not None:
        if explicit < vocab_size:
            raise ConfigError(
                f"model vocab_size {explicit} is smaller than the shards' "
                f"vocabulary ({vocab_size}); drop the override or raise it"
            )
        return base.replace(vocab_size=explicit)
    if base.vocab_size not in (DEFAULT_VOCAB, vocab_size) and base.vocab_size < vocab_size:
        raise ConfigError(
            f"preset {config.preset!r} has vocab_size {base.vocab_size} < the shards' {vocab_size}"
        )
    model_config = base.replace(vocab_size=vocab_size)
    if config.seq_len > model_config.max_seq_len:
        raise ConfigError(
            f"--seq-len {config.seq_len} exceeds the preset's max_seq_len "
            f"{model_config.max_seq_len}; lower it or override max_seq_len"
        )
    return model_config


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
        self.run_dir = RunDir.for_output(config.output, config.cache_dir)
        self.step, self.tokens = 0, 0
        self.result = TrainResult(self.run_dir.output, 0, 0, None)

    # ---- the recipe ------------------------------------------------------------------------

    def run(self) -> TrainResult:
        started = time.perf_counter()
        if self.config.num_threads:
            torch.set_num_threads(self.config.num_threads)
        manifest = open_manifest(self.config.shards)
        self.model_config = build_model_config(self.config, manifest.vocab_size)
        loaded = prepare_run(self.config, self.info, self.run_dir, manifest, self.model_config)
        self.build(loaded)
        self.metrics = MetricsLogger(self.run_dir.local_root, enabled=self.info.is_main)
        self.checkpointer = Checkpointer(
            self.run_dir,
            self.info,
            self.config,
            self.model_config,
            self.fsdp,
            loaded.step if loaded else None,
            run_files=lambda: [
                METRICS_FILE,
                *self.metrics.tensorboard_files(self.run_dir.local_root),
            ],
        )
        self.has_val = bool(manifest.split("val"))
        with self.uploads_on_exit():
            loop_started = time.perf_counter()
            self.loop()
            self.result.loop_seconds = time.perf_counter() - loop_started
        self.result.seconds = time.perf_counter() - started
        return self.result

    def loop(self) -> None:
        cfg = self.config
        throughput = Throughput(
            self.raw_model.estimate_flops_per_token(cfg.seq_len),
            peak_flops(self.device, cfg.peak_flops),
            self.info.world_size,
        )
        step_tokens = cfg.batch_size * cfg.seq_len * cfg.grad_accum * self.info.world_size
        while self.step < cfg.max_steps:
            throughput.start()
            lr = self.schedule.lr_at(self.step)
            loss, grad_norm, stall = self.train_step(lr)
            self.step, self.tokens = self.step + 1, self.tokens + step_tokens
            throughput.stop(step_tokens)
            record = {
                "step": self.step,
                "loss": loss,
                "lr": lr,
                "tokens": self.tokens,
                "grad_norm": grad_norm,
                **throughput.report(),
            }
            if stall is not None:
                record["ckpt_stall_s"] = round(stall, 6)
            if self.should(cfg.eval_every) and self.has_val:
                record["val_loss"] = self.result.val_loss = self.evaluate()
            if self.evaluator is not None and self.should(cfg.eval_every):
                record.update(self.evaluator(self.raw_model, self.step))
            self.metrics.log(record)
            self.result.loss, self.result.step, self.result.tokens = loss, self.step, self.tokens
            if self.should(cfg.checkpoint_every):
                self.checkpointer.save(
                    self.step,
                    self.tokens,
                    self.raw_model,
                    self.optimizer,
                    self.loader,
                    self.schedule,
                )
            if (
                self.on_step
                and self.info.is_main
                and (self.step % cfg.log_every == 0 or self.step == cfg.max_steps)
            ):
                self.on_step({**record, "max_steps": cfg.max_steps})

    def should(self, every: int) -> bool:
        """Every `every` steps and at the last one; never when `every` is 0."""
        return every > 0 and (self.step % every == 0 or self.step == self.config.max_steps)

    # ---- setup -----------------------------------------------------------------------------

    def build(self, loaded: LoadedCheckpoint | None) -> None:
        cfg, info = self.config, self.info
        rng.seed_all(cfg.seed)
        self.raw_model = Decoder(self.model_config).to(self.device)
        self.raw_model.set_activation_checkpointing(cfg.activation_checkpointing)
        if loaded is not None:
            self.raw_model.load_state_dict(loaded.model)
        self.model = distributed.wrap(self.raw_model, info, self.device, cfg.fsdp)
        self.forward = torch.compile(self.model) if cfg.compile else self.model
        self.optimizer = optim.build_optimizer(self.raw_model, cfg, self.device)
        self.schedule = LRSchedule.from_config(cfg)
        self.loader = ShardLoader(
            cfg.shards,
            "train",
            cfg.batch_size,
            cfg.seq_len,
            cfg.seed,
            info.rank,
            info.world_size,
            with_doc_ids=cfg.doc_mask,
        )
        self.autocast_dtype = _autocast_dtype(cfg.dtype, self.device)
        if loaded is None:
            return
        optim.load_state_tensors(
            self.raw_model, self.optimizer, loaded.optimizer, loaded.optimizer_meta, full=self.fsdp
        )
        self.schedule = LRSchedule.from_state_dict(loaded.trainer["schedule"])
        state = loaded.ranks[info.rank]
        self.loader.load_state_dict(state["loader"])
        rng.restore(state["rng"])
        self.step, self.tokens = loaded.step, loaded.trainer["tokens"]
        self.result.resumed_from = loaded.step

    @property
    def fsdp(self) -> bool:
        return self.config.fsdp and self.info.enabled

    @contextlib.contextmanager
    def uploads_on_exit(self) -> Iterator[None]:
        """Wait for pending checkpoint uploads on any exit, SIGTERM included."""
        previous = None
        if self.info.is_main and _in_main_thread():
            previous = signal.signal(signal.SIGTERM, _raise_system_exit)
        try:
            yield
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
            self.metrics.close()
            self.result.checkpoints = self.checkpointer.close()
            self.result.checkpoint_stalls_s = self.checkpointer.stalls
            self.loader.close()

    # ---- one step --------------------------------------------------------------------------

    def train_step(self, lr: float) -> tuple[float, float | None, float | None]:
        """Forward/backward over `grad_accum` micro-batches, clip, step. Returns the loss (mean
        over ranks), the gradient norm and the time spent waiting for a checkpoint copy."""
        cfg = self.config
        self.model.train()
        total = torch.zeros((), device=self.device)
        for micro in range(cfg.grad_accum):
            batch = self.loader.next_batch()
            last = micro == cfg.grad_accum - 1
            with self.sync_context(last), self.autocast():
                loss = self.forward(
                    batch.inputs.to(self.device, non_blocking=True),
                    targets=batch.targets.to(self.device, non_blocking=True),
                    doc_ids=_maybe(batch.doc_ids, self.device),
                ).loss
                loss = loss / cfg.grad_accum
            loss.backward()
            total += loss.detach()
        mean_loss = distributed.mean_across(total, self.info).item()
        if not math.isfinite(mean_loss):  # the same value on every rank (all-reduced)
            raise TrainingDivergedError(
                f"loss became {mean_loss} at step {self.step + 1} (run {self.run_dir.output}); "
                f"training stopped before applying that update. The last good checkpoint is "
                f"step {self.checkpointer.last_saved}; resume from it with a lower --lr or more "
                "--warmup-steps"
            )
        grad_norm = None
        if cfg.grad_clip > 0:
            norm = nn.utils.clip_grad_norm_(self.raw_model.parameters(), cfg.grad_clip)
            grad_norm = float(norm.full_tensor() if hasattr(norm, "full_tensor") else norm)
        stall = self.checkpointer.before_update()
        optim.set_lr(self.optimizer, lr)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return mean_loss, grad_norm, stall

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
        cfg = self.config
        self.model.eval()
        losses = []
        for batch in eval_batches(
            cfg.shards,
            "val",
            cfg.batch_size,
            cfg.seq_len,
            cfg.eval_batches,
            with_doc_ids=cfg.doc_mask,
        ):
            with self.autocast():
                losses.append(
                    self.forward(
                        batch.inputs.to(self.device),
                        targets=batch.targets.to(self.device),
                        doc_ids=_maybe(batch.doc_ids, self.device),
                    ).loss
                )
        self.model.train()
        return float(torch.stack(losses).mean()) if losses else float("nan")

    # ---- checkpoints -----------------------------------------------------------------------


def _maybe(tensor: torch.Tensor | None, device: torch.device) -> torch.Tensor | None:
    return None if tensor is None else tensor.to(device, non_blocking=True)


def _autocast_dtype(name: str, device: torch.device) -> torch.dtype | None:
    if name == "auto":
        return torch.bfloat16 if device.type == "cuda" else None
    return None if name == "float32" else getattr(torch, name)


def _in_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _raise_system_exit(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    """`python -m smelt.training.loop` / torchrun entry point (no Prefect)."""
    parser = argparse.ArgumentParser(prog="smelt.training.loop", description=__doc__.split("\n")[0])
    TrainConfig.add_arguments(parser)
    parser.add_argument("--debug", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        result = train(TrainConfig.from_args(args))
    except SmeltError as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"trained to step {result.step} ({result.tokens} tokens), loss {result.loss}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
