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
    train = subparsers.add_parser(
        "train",
        help="train a model on token shards",
        description="Train a preset on token shards into --output: one shard set, or a mixture "
        "by weight and in phases (--shards URI=WEIGHT repeated, --data FILE); the same command "
        "again resumes from the newest complete checkpoint (local or on S3).",
    )
    TrainConfig.add_arguments(train)
    train.add_argument("--no-progress", action="store_true", help="no progress bar (default: off)")
    train.set_defaults(handler=run_train)


def run_train(args: argparse.Namespace) -> int:
    from smelt.training.distributed import under_torchrun

    config = TrainConfig.from_args(args)
    if under_torchrun():
        from smelt.evaluation.in_training import task_evaluator
        from smelt.training.loop import train

        result = train(config, evaluator=task_evaluator(config))
        summary = {
            "step": result.step,
            "tokens": result.tokens,
            "loss": result.loss,
            "val_loss": result.val_loss,
            "output": result.output,
            "already_done": result.already_done,
            "data_finished": result.data.get("finished", False),
        }
    else:
        from smelt.cli import api

        api.prepare()  # before Prefect is imported (see smelt.cli.api)
        from smelt.flows.train import train_flow

        api.ready()
        with TrainProgress(config.max_steps, enabled=not args.no_progress) as on_step:
            summary = train_flow(config=config, on_step=on_step)
    print_summary(summary)
    return 0


class TrainProgress:
    """A rich progress bar fed by the training loop's step callback."""

    def __init__(self, max_steps: int, enabled: bool, label: str = "train") -> None:
        self.max_steps, self.enabled, self.label = max_steps, enabled, label
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
            TextColumn(f"[bold]{self.label}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"),
            TextColumn("{task.fields[speed]}"),
            TimeRemainingColumn(),
        )
        self.task = self.bar.add_task(self.label, total=self.max_steps, loss="-", speed="")
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


def print_summary(summary: dict[str, Any]) -> None:
    if int(os.environ.get("RANK", "0")) != 0:
        return
    loss = summary.get("loss")
    val = summary.get("val_loss")
    text = f"step {summary['step']}, {summary['tokens']:,} tokens"
    if loss is not None:
        text += f", loss {loss:.4f}"
    if val is not None:
        text += f", val loss {val:.4f}"
    if summary.get("already_done"):
        further = (
            "add a phase to its data plan" if summary.get("data_finished") else "raise --max-steps"
        )
        print(
            f"{summary['output']} is already trained to step {summary['step']} "
            f"({summary['tokens']:,} tokens); {further} to train it further"
        )
        return
    print(f"trained {summary['output']}: {text}")
