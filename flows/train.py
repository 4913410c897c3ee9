"""The `train` flow: train (or resume) a model on token shards.

Its parameter is the `TrainConfig` dataclass itself (validated by pydantic, shown as a form in
the UI); a deployment passes it as a JSON object, e.g. `{"config": {"shards": "s3://...",
"output": "s3://...", "preset": "small"}}`. The flow run shows a progress artifact while it
trains, then a loss table and a report of the training data (tokens per source and phase).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prefect import get_run_logger

from smelt.flows.flow import flow
from smelt.tasks.train import train_task
from smelt.training.config import TrainConfig


@flow(name="train")
def train_flow(
    config: TrainConfig, on_step: Callable[[dict[str, Any]], None] | None = None
) -> dict[str, Any]:
    """Train `config.preset` on its data (`config.shards` or `config.data`) into
    `config.output` (resuming by default)."""
    logger = get_run_logger()
    logger.info("training %s on %s -> %s", config.preset, config.data_name, config.output)
    summary = train_task(config, on_step)
    logger.info("stopped at step %s, loss %s", summary["step"], summary["loss"])
    return summary
