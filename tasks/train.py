"""The Prefect task around the training loop: progress and loss artifacts, a small manifest."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from prefect import task
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.cache_policies import NONE

from smelt.evaluation.in_training import task_evaluator
from smelt.training.config import TrainConfig
from smelt.training.loop import train
from smelt.training.mixture import mixture_markdown

PROGRESS_EVERY_S = 5.0


@task(name="train-model", cache_policy=NONE)
def train_task(
    config: TrainConfig, on_step: Callable[[dict[str, Any]], None] | None = None
) -> dict[str, Any]:
    """Train (or resume) and return where the run is and how far it got."""
    progress_id = create_progress_artifact(
        progress=0.0, key="train-progress", description=f"Training {config.output}"
    )
    rows: list[dict[str, Any]] = []
    last_update = 0.0

    def report(record: dict[str, Any]) -> None:
        nonlocal last_update
        rows.append({k: record.get(k) for k in ("step", "loss", "val_loss", "lr", "tokens")})
        rows[-1].update({k: v for k, v in record.items() if k.startswith("eval/")})
        rows[-1].update(_shares(record))
        now = time.monotonic()
        if now - last_update >= PROGRESS_EVERY_S or record["step"] == config.max_steps:
            update_progress_artifact(progress_id, 100.0 * record["step"] / config.max_steps)
            last_update = now
        if on_step is not None:
            on_step(record)

    result = train(config, on_step=report, evaluator=task_evaluator(config))
    create_table_artifact(
        key="train-loss", table=rows[-200:], description=f"Loss per logged step of {config.output}"
    )
    if result.data:
        create_markdown_artifact(
            key="train-data",
            markdown=mixture_markdown(result.data),
            description=f"Tokens drawn per source and phase by {config.output}",
        )
    return {
        "output": result.output,
        "step": result.step,
        "tokens": result.tokens,
        "loss": result.loss,
        "val_loss": result.val_loss,
        "resumed_from": result.resumed_from,
        "already_done": result.already_done,
        "checkpoints": result.checkpoints,
        "seconds": round(result.seconds, 2),
        "source_tokens": result.data.get("source_tokens", {}),
        "data_finished": result.data.get("finished", False),
    }


def _shares(record: dict[str, Any]) -> dict[str, Any]:
    """The phase and each source's share of the tokens so far, as loss-table columns."""
    drawn = record.get("source_tokens") or {}
    total = sum(drawn.values()) or 1
    shares = {f"share {source}": round(tokens / total, 4) for source, tokens in drawn.items()}
    return {"phase": record.get("phase_name"), **shares} if drawn else {}
