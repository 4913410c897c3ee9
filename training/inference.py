"""A trained checkpoint, ready to use: the model, its tokenizer, and where they came from.

Every consumer of a finished run (`smelt generate`, `export-hf`, `eval`, `chat`, `serve`, SFT's
starting point) opens it through `open_checkpoint`, which takes what the command line takes: a
run's output URI (its newest complete checkpoint) or one `step_NNNNNNNN` directory, local or
on S3 (fetched and verified into the local cache).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from smelt import storage
from smelt.errors import InputError, IntegrityError
from smelt.model.checkpoint_io import load_model
from smelt.model.config import ModelConfig
from smelt.model.decoder import Decoder
from smelt.training import checkpoint
from smelt.training.checkpoint import StepLayout
from smelt.training.manager import locate


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
    tokenizer_sha256: str | None = None  # of the tokenizer the checkpoint was trained with

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
    """Load the checkpoint at `uri` (a run or one step) onto `device`, in eval mode.

    The run's tokenizer.json must be the tokenizer the checkpoint recorded (by SHA-256):
    a model decoded with another vocabulary prints fluent nonsense, so it is refused."""
    from tokenizers import Tokenizer

    step, manager = locate(uri)
    tokenizer_path = manager.fetch_tokenizer()
    recorded = checkpoint.tokenizer_sha256(step)
    if tokenizer_path and recorded and storage.sha256_file(tokenizer_path) != recorded:
        raise IntegrityError(
            f"{manager.run.tokenizer} is not the tokenizer checkpoint {step.root} was trained "
            f"with (SHA-256 {storage.sha256_file(tokenizer_path)[:12]}…, the checkpoint "
            f"recorded {recorded[:12]}…); put the run's own tokenizer.json back"
        )
    model = load_model(step.model, device=device).eval()
    trainer = checkpoint.read_document(step, StepLayout.TRAINER)
    return OpenedCheckpoint(
        model=model,
        tokenizer=Tokenizer.from_file(tokenizer_path) if tokenizer_path else None,
        tokenizer_path=tokenizer_path,
        step_dir=step.root,
        step=int(trainer.get("step", 0)),
        tokens=int(trainer.get("tokens", 0)),
        source=uri,
        tokenizer_sha256=recorded,
    )
