"""`smelt train`: train a preset on shards, resuming from the newest checkpoint (`train` flow).

Single process: runs the `train` Prefect flow (Prefect's ephemeral server when PREFECT_API_URL
is unset) with a progress bar. Under torchrun (`torchrun --nproc-per-node N -m smelt.cli.main
train ...`, or `-m smelt.training.loop` with the same flags) every rank runs the training loop
directly, without Prefect: one job is one set of ranks, and rank 0 writes metrics and checkpoints.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from smelt.training.config import TrainConfig


def register(subparsers: argparse._SubParsersAction) -> None:
    train = subparsers.add_parser("train", help="train a model on token shards")
    TrainConfig.add_arguments(train)
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.set_defaults(handler=run_train)


def run_train(args: argparse.Namespace) -> int:
    from smelt.training.distributed import under_torchrun

    config = TrainConfig.from_args(args)
    if under_torchrun():
        from smelt.training.loop import train

        result = train(config)
        summary = {
            "step": result.step,
            "tokens": result.tokens,
            "loss": result.loss,
            "output": result.output,
        }
    else:
        from smelt.cli import api

        api.prepare()  # before Prefect is imported (see smelt.cli.api)
        from smelt.flows.train import train_flow

        api.ready()
        with _progress(config, enabled=not args.no_progress) as on_step:
            summary = train_flow(config=config, on_step=on_step)
    _print_summary(summary)
    return 0


class _progress:
    """A rich progress bar fed by the training loop's step callback."""

    def __init__(self, config: TrainConfig, enabled: bool) -> None:
        self.config, self.enabled = config, enabled
        self.bar = None

    def __enter__(self) -> Any:
        if not self.enabled:
            return None
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        self.bar = Progress(
            TextColumn("[bold]train"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"),
            TextColumn("{task.fields[speed]}"),
            TimeRemainingColumn(),
        )
        self.task = self.bar.add_task("train", total=self.config.max_steps, loss="-", speed="")
        self.bar.start()
        return self.update

    def update(self, record: dict[str, Any]) -> None:
        speed = f"{record['tokens_per_s']:,.0f} tok/s" if record.get("tokens_per_s") else ""
        self.bar.update(
            self.task, completed=record["step"], loss=f"{record['loss']:.4f}", speed=speed
        )

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.stop()


def _print_summary(summary: dict[str, Any]) -> None:
    if int(os.environ.get("RANK", "0")) != 0:
        return
    loss = summary.get("loss")
    val = summary.get("val_loss")
    text = f"step {summary['step']}, {summary['tokens']:,} tokens"
    if loss is not None:
        text += f", loss {loss:.4f}"
    if val is not None:
        text += f", val loss {val:.4f}"
    print(f"trained {summary['output']}: {text}")
