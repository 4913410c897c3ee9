"""Starting a new run from another run's weights (`--init-from`): fine-tuning, continued training.

The new run takes the base's model, architecture and weights, and nothing else: a fresh
optimizer, a fresh schedule, its own data position, step 0. The base is a run (its newest
complete checkpoint) or one `step_NNNNNNNN` directory, local or on S3. It is found and checked
before anything is written, from its small JSON files alone; its weights are fetched (verified)
only when training starts, and only for a fresh run: a resumed run continues from its own
checkpoint. The base must have been trained with the tokenizer the new data was built with.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from smelt import storage
from smelt.errors import ConfigError, InputError
from smelt.model.checkpoint_io import load_weights
from smelt.model.config import ModelConfig
from smelt.training import checkpoint, distributed
from smelt.training.checkpoint import RunLayout, StepLayout
from smelt.training.distributed import DistInfo
from smelt.training.manager import CheckpointManager

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BaseCheckpoint:
    """The complete checkpoint a run starts from, and what its JSON files say about it."""

    source: str  # the URI as given
    step: StepLayout  # complete, local or remote
    number: int
    model_config: ModelConfig
    tokenizer_sha256: str | None  # of the tokenizer it was trained with, when recorded
    run: RunLayout  # the run it belongs to (its tokenizer.json, its chat template)


def find_base(uri: str) -> BaseCheckpoint:
    """The base at `uri`: a run's newest complete checkpoint, or one step directory."""
    uri = storage.normalize(uri)
    number = RunLayout.step_of(uri)
    if number is not None and StepLayout(uri).marker.done():
        step, run = StepLayout(uri), RunLayout(storage.parent(uri))
    else:
        steps = CheckpointManager(uri).complete_steps()
        if not steps:
            raise InputError(
                f"no complete checkpoint under {uri} to start from; pass a trained run's "
                "--output or one of its step_NNNNNNNN directories"
            )
        number = max(steps)
        step, run = steps[number], RunLayout(uri)
    trainer = checkpoint.read_document(step, StepLayout.TRAINER)
    return BaseCheckpoint(
        source=uri,
        step=step,
        number=number,
        model_config=ModelConfig.from_dict(trainer["model_config"]),
        tokenizer_sha256=checkpoint.tokenizer_sha256(step),
        run=run,
    )


def check_base(base: BaseCheckpoint, tokenizer_sha256: str, data: str) -> None:
    """The base must know the data's tokens: same tokenizer (by SHA-256) as the data's."""
    if base.tokenizer_sha256 is None:
        log.warning(
            "%s recorded no tokenizer: cannot check that it matches the data %s",
            base.source,
            data,
        )
        return
    if base.tokenizer_sha256 != tokenizer_sha256:
        raise ConfigError(
            f"the base {base.source} was trained with tokenizer {base.tokenizer_sha256[:12]}…, "
            f"but {data} was built with tokenizer {tokenizer_sha256[:12]}…; build the data with "
            f"the base's tokenizer ({base.run.tokenizer})"
        )


def base_weights(base: BaseCheckpoint, info: DistInfo) -> dict[str, torch.Tensor]:
    """The base's weights on CPU on every rank (rank 0 fetches a verified local copy)."""
    manager = CheckpointManager(base.run.root)
    local = distributed.on_main(lambda: manager.fetch(base.number).model, info)
    path = distributed.broadcast_json(local, info)
    weights, _ = load_weights(path)
    log.info("starting from the weights of %s (step %d)", base.step.root, base.number)
    return weights
