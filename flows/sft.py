"""The `sft` flow: fine-tune a trained run on conversations (supervised fine-tuning).

Its parameter is `SFTConfig` (validated by pydantic, a form in the UI); a deployment passes it
as a JSON object, e.g. `{"config": {"base": "s3://.../runs/main", "data": ["s3://.../chats.jsonl"],
"output": "s3://.../runs/sft", "training": {"max_steps": 2000, "seq_len": 1024}}}`. The
conversations are tokenized once beside the run (a task run with a kept/dropped table), then
the `train-model` task trains from the base's weights, or resumes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prefect import get_run_logger

from smelt.flows.flow import flow
from smelt.sft.config import SFTConfig
from smelt.tasks.sft import prepare_conversations
from smelt.tasks.train import train_task


@flow(name="sft")
def sft_flow(
    config: SFTConfig, on_step: Callable[[dict[str, Any]], None] | None = None
) -> dict[str, Any]:
    """Fine-tune `config.base` on `config.data` into `config.output` (resuming by default)."""
    logger = get_run_logger()
    data = prepare_conversations(config)
    logger.info("%s", data["summary"])
    summary = train_task(config.train_config(), on_step)
    logger.info("stopped at step %s, loss %s", summary["step"], summary["loss"])
    return {**summary, "data": data}
