"""Before the first step: check the output and the tokenizer, then pick and load the checkpoint
to resume from (the newest complete one, local or remote), refusing one that does not fit."""

from __future__ import annotations

import logging

from smelt.errors import ConfigError
from smelt.model.config import ModelConfig
from smelt.prep.shard_format import Manifest
from smelt.training import checkpoint, distributed
from smelt.training.checkpoint import LoadedCheckpoint
from smelt.training.config import TrainConfig
from smelt.training.distributed import DistInfo
from smelt.training.metrics import truncate_metrics
from smelt.training.run_dir import (
    METRICS_FILE,
    RunDir,
    check_tokenizer,
    copy_tokenizer,
    resolve_tokenizer,
)

log = logging.getLogger(__name__)


def prepare_run(
    config: TrainConfig, info: DistInfo, run: RunDir, manifest: Manifest, model_config: ModelConfig
) -> LoadedCheckpoint | None:
    """Rank 0 checks and chooses; every rank loads the chosen checkpoint (or None: fresh run)."""
    chosen = None
    if info.is_main:
        run.check_same_run(config)
        run.clean_partial()
        tokenizer_uri = resolve_tokenizer(config)
        if tokenizer_uri:
            copy_tokenizer(
                check_tokenizer(
                    tokenizer_uri, manifest.vocab_size, manifest.tokenizer_sha256, config.shards
                ),
                run,
            )
        steps = run.complete_steps() if config.resume == "auto" else {}
        if steps:
            step = max(steps)
            chosen = (step, run.fetch(step, steps[step]))
            run.restore_metrics()
        truncate_metrics(run.local(METRICS_FILE), chosen[0] if chosen else 0)
        run.write_run_file(config, model_config.to_dict(), info.world_size)
    chosen = distributed.broadcast_json(chosen, info)
    if chosen is None:
        return None
    loaded = checkpoint.load_local(chosen[1], verify=info.is_main)
    check_compatible(loaded, model_config, info, run.output)
    log.info("resuming from %s (step %d)", chosen[1], loaded.step)
    return loaded


def check_compatible(
    loaded: LoadedCheckpoint, model_config: ModelConfig, info: DistInfo, output: str
) -> None:
    """A checkpoint of another architecture or world size cannot continue this run."""
    if loaded.model_config != model_config:
        mine, theirs = model_config.to_dict(), loaded.model_config.to_dict()
        diff = {k: (theirs[k], mine[k]) for k in mine if mine[k] != theirs[k]}
        raise ConfigError(
            f"checkpoint step {loaded.step} in {output} is of another "
            f"architecture ({diff}); use another --output"
        )
    saved_world = loaded.trainer["world_size"]
    if saved_world != info.world_size:
        raise ConfigError(
            f"checkpoint step {loaded.step} was written by {saved_world} ranks; "
            f"resume it with --nproc-per-node {saved_world}"
        )
