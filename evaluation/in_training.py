"""Task evaluation during training: the callable `smelt train --eval-task NAME=URI` hands the loop.

The loop knows nothing of tasks: every `--eval-every` steps it calls `evaluator(model, step)`
and merges the returned metrics into that step's record, so they land in `metrics.jsonl` and
TensorBoard (`eval/<task>/acc`, `eval/<task>/acc_norm`). Task files are read and tokenized once,
when the evaluator is built, so a bad file fails before the first step and each call only runs
the model. Scoring is the same as `smelt eval`'s.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from smelt import storage
from smelt.errors import ConfigError
from smelt.evaluation.evaluator import EvalInputs, score_inputs
from smelt.evaluation.scorer import Scorer
from smelt.training.config import TrainConfig

EVAL_PREFIX = "eval"


class TaskEvaluator:
    """`evaluator(model, step) -> {"eval/<task>/acc": ..., ...}` over fixed task files."""

    def __init__(self, tasks: dict[str, str], tokenizer: Any, batch_size: int = 32) -> None:
        self.inputs = EvalInputs.load(tasks, {})
        self.tokenizer = tokenizer
        self.batch_size = batch_size

    def __call__(self, model: nn.Module, step: int) -> dict[str, float]:
        device = next(model.parameters()).device
        scorer = Scorer(
            model,  # type: ignore[arg-type] - the raw Decoder the loop trains
            self.tokenizer,
            batch_size=self.batch_size,
            autocast_dtype=torch.bfloat16 if device.type == "cuda" else None,
        )
        scored = score_inputs(scorer, self.inputs)
        metrics: dict[str, float] = {}
        for name, result in scored["tasks"].items():
            metrics[f"{EVAL_PREFIX}/{name}/acc"] = result["acc"]
            if "perplexity" in result:
                metrics[f"{EVAL_PREFIX}/{name}/perplexity"] = result["perplexity"]
            else:
                metrics[f"{EVAL_PREFIX}/{name}/acc_norm"] = result["acc_norm"]
        return metrics


def task_evaluator(config: TrainConfig) -> TaskEvaluator | None:
    """The evaluator a run's `--eval-task` flags ask for, or None; needs the run's tokenizer."""
    if not config.eval_tasks:
        return None
    if config.fsdp:  # sharded parameters are whole only inside the wrapped forward
        raise ConfigError(
            "--eval-task does not run with --fsdp; evaluate the checkpoints with smelt eval"
        )
    from tokenizers import Tokenizer

    from smelt.training.preflight import resolve_tokenizer
    from smelt.training.sources import open_training_data

    uri = resolve_tokenizer(config, open_training_data(config).primary.root)
    if uri is None:
        raise ConfigError(
            "--eval-task needs the tokenizer the shards were built with; pass --tokenizer"
        )
    tokenizer = Tokenizer.from_str(storage.read_text(uri))
    return TaskEvaluator(config.eval_tasks, tokenizer, batch_size=config.batch_size * 4)
