"""A trained checkpoint, ready to use: the model, its tokenizer, and where they came from.

Every consumer of a finished run (`smelt generate`, `export-hf`, `eval`, `chat`, `serve`, SFT's
starting point) opens it through `open_checkpoint`, which takes what the command line takes: a
run's output URI (its newest complete checkpoint) or one `step_NNNNNNNN` directory, local or
on S3 (fetched and verified into the local cache).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

import torch

from smelt.errors import InputError
from smelt.model.checkpoint_io import load_model
from smelt.model.config import ModelConfig
from smelt.model.decoder import Decoder


@dataclass
class OpenedCheckpoint:
    """A model in eval mode with its tokenizer and the facts a report needs."""

    model: Decoder
    tokenizer: Any  # tokenizers.Tokenizer, or None when the run recorded none
    tokenizer_path: str | None
    step_dir: str  # local, verified step directory
    step: int
    tokens: int  # training tokens seen up to this checkpoint
    source: str  # the URI that was asked for

    @property
    def config(self) -> ModelConfig:
        return self.model.config

    def require_tokenizer(self) -> Any:
        """The tokenizer, or a clear error for a run trained without one."""
        if self.tokenizer is None:
            raise InputError(
                f"no tokenizer.json beside the checkpoint {self.step_dir}: the run was "
                "trained without one; train with --tokenizer"
            )
        return self.tokenizer


def open_checkpoint(uri: str, device: str | torch.device = "cpu") -> OpenedCheckpoint:
    """Load the checkpoint at `uri` (a run or one step) onto `device`, in eval mode."""
    from tokenizers import Tokenizer

    from smelt.training.run_dir import locate_checkpoint

    step_dir, tokenizer_path = locate_checkpoint(uri)
    model = load_model(os.path.join(step_dir, "model.safetensors"), device=device).eval()
    tokenizer = Tokenizer.from_file(tokenizer_path) if tokenizer_path else None
    trainer_path = os.path.join(step_dir, "trainer.json")
    trainer: dict[str, Any] = {}
    if os.path.exists(trainer_path):
        with open(trainer_path, encoding="utf-8") as fh:
            trainer = json.load(fh)
    return OpenedCheckpoint(
        model=model,
        tokenizer=tokenizer,
        tokenizer_path=tokenizer_path,
        step_dir=step_dir,
        step=int(trainer.get("step", 0)),
        tokens=int(trainer.get("tokens", 0)),
        source=uri,
    )
