"""Before the first step: is this output this run, and can it continue? Checked in full before
anything is written, so that a refused command changes nothing.

`check` reads (the run's record `run.json`, its checkpoints, the tokenizer) and refuses, with
a message naming the object and the fix: another configuration without `--force`, a
`--resume never` over checkpoints without `--force`, a checkpoint of another architecture,
world size or tokenizer, a tokenizer that did not build the shards, a base (`--init-from`)
trained with another tokenizer than the shards'. It returns a `Plan`;
only `Plan.apply` writes (the record, the tokenizer copy, the metrics cut back to the resumed
step), and the trainer calls it after the checkpoint was also loaded successfully.

A run with no complete checkpoint holds nothing worth protecting: it may be restarted with
other settings (its record is replaced).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from typing import Any

from smelt import storage
from smelt.errors import ConfigError, InputError
from smelt.model.config import ModelConfig
from smelt.prep.layout import ShardsLayout, TokenizerLayout
from smelt.prep.shard_format import Manifest
from smelt.training import checkpoint, warm_start
from smelt.training.checkpoint import StepLayout
from smelt.training.config import TrainConfig
from smelt.training.manager import CheckpointManager
from smelt.training.metrics import truncate_metrics

log = logging.getLogger(__name__)


@dataclass
class Plan:
    """What starting the run will write, decided once every check passed."""

    manager: CheckpointManager
    record: dict[str, Any]  # the run.json content
    resume_step: int | None
    discard: bool  # --resume never --force over an existing run
    tokenizer: bytes | None  # the checked tokenizer, copied into the run

    def apply(self) -> None:
        """Write: forget a discarded run, record this one, copy its tokenizer, and cut the
        metrics back to the step being resumed (its later steps are trained again)."""
        manager = self.manager
        if self.discard:
            manager.discard()
        manager.local.remove_temporaries()
        text = json.dumps(self.record, indent=1, sort_keys=True)
        for run in filter(None, [manager.local, manager.remote]):
            storage.write_text(run.run_file, text)
            if self.tokenizer is not None:
                storage.write_bytes(run.tokenizer, self.tokenizer)
        local_metrics = manager.local.metrics
        fresh_mirror = manager.remote is not None and not os.path.exists(local_metrics)
        if fresh_mirror and storage.exists(manager.remote.metrics):  # continue the metrics
            storage.get_file(manager.remote.metrics, local_metrics)
        truncate_metrics(local_metrics, self.resume_step or 0)


def check(
    config: TrainConfig,
    manager: CheckpointManager,
    manifest: Manifest,
    model_config: ModelConfig,
    world_size: int,
) -> Plan:
    """Every check before the run starts; raises `ConfigError`/`InputError`, writes nothing."""
    recorded = recorded_config(manager)
    steps = manager.complete_steps()
    discard = config.resume == "never" and (recorded is not None or bool(steps))
    if config.resume == "never" and steps and not config.force:
        raise ConfigError(
            f"{manager.output} already holds a run ({len(steps)} checkpoints) and "
            "--resume never was given; choose another --output, resume it with "
            "--resume auto, or pass --force to discard it"
        )
    if recorded is not None and not discard:
        _check_same_run(config, recorded, manager.output, has_checkpoints=bool(steps))
    if config.init_from:  # the base must know the data's tokens
        warm_start.check_base(
            warm_start.find_base(config.init_from), manifest.tokenizer_sha256, manifest.root
        )
    tokenizer_uri = resolve_tokenizer(config, manifest.root)
    tokenizer = None
    if tokenizer_uri:
        tokenizer = check_tokenizer(
            tokenizer_uri, manifest.vocab_size, manifest.tokenizer_sha256, manifest.root
        )
    resume_step = max(steps) if steps and not discard else None
    if resume_step is not None:
        check_checkpoint(
            steps[resume_step], model_config, world_size, manifest.tokenizer_sha256, config
        )
    record = {
        "train_config": config.to_dict(),
        "model_config": model_config.to_dict(),
        "world_size": world_size,
    }
    return Plan(manager, record, resume_step, discard, tokenizer)


def recorded_config(manager: CheckpointManager) -> TrainConfig | None:
    """The TrainConfig stored in OUTPUT/run.json, if this output already holds a run."""
    uri = manager.run.run_file
    if not storage.exists(uri):
        return None
    try:
        return TrainConfig.from_dict(json.loads(storage.read_text(uri))["train_config"])
    except (ValueError, KeyError, TypeError, ConfigError) as exc:
        raise ConfigError(
            f"{uri} is not a smelt run file ({exc}); choose another --output"
        ) from None


def _check_same_run(
    config: TrainConfig, recorded: TrainConfig, output: str, has_checkpoints: bool
) -> None:
    differences = config.differences(recorded)
    if not differences:
        return
    listed = ", ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in differences.items())
    if not has_checkpoints:
        log.warning(
            "%s has no checkpoint yet: starting it over with new settings (%s)", output, listed
        )
        return
    if not config.force:
        raise ConfigError(
            f"{output} holds a run with a different configuration ({listed}); choose "
            "another --output, or pass --force to resume it with the new settings"
        )
    log.warning("resuming %s with changed settings: %s", output, listed)


def check_checkpoint(
    step: StepLayout,
    model_config: ModelConfig,
    world_size: int,
    tokenizer_sha256: str,
    config: TrainConfig,
) -> None:
    """A checkpoint of another architecture, world size or tokenizer cannot continue this run
    (read from its small JSON files, local or remote: nothing is fetched yet)."""
    number = checkpoint.read_marker(step)["step"]
    trainer = checkpoint.read_document(step, StepLayout.TRAINER)
    saved = ModelConfig.from_dict(trainer["model_config"])
    if saved != model_config:
        mine, theirs = model_config.to_dict(), saved.to_dict()
        diff = {k: (theirs.get(k), mine[k]) for k in mine if mine[k] != theirs.get(k)}
        raise ConfigError(
            f"checkpoint step {number} in {config.output} is of another architecture "
            f"({diff}); use another --output"
        )
    if trainer["world_size"] != world_size:
        raise ConfigError(
            f"checkpoint step {number} in {config.output} was written by "
            f"{trainer['world_size']} ranks; resume it with --nproc-per-node "
            f"{trainer['world_size']}"
        )
    recorded = checkpoint.tokenizer_sha256(step)
    if recorded and recorded != tokenizer_sha256:
        raise ConfigError(
            f"checkpoint step {number} in {config.output} was trained with tokenizer "
            f"{recorded[:12]}…, but the shards {config.data_name} were built with tokenizer "
            f"{tokenizer_sha256[:12]}…; train on shards of the run's tokenizer, or use "
            "another --output"
        )


# ---- tokenizer ------------------------------------------------------------------------------


def resolve_tokenizer(config: TrainConfig, shards_uri: str) -> str | None:
    """The tokenizer URI: --tokenizer, else the one beside the shards (the first shard set of a
    mixture: all share one tokenizer), else the one their build report names; None when none
    can be found (generate/export then need one)."""
    if config.tokenizer:
        uri = TokenizerLayout.file_uri(config.tokenizer)
        if not storage.exists(uri):
            raise InputError(
                f"tokenizer not found: {uri}; pass the tokenizer.json the shards "
                "were built with (--tokenizer)"
            )
        return uri
    beside = TokenizerLayout.at(shards_uri).tokenizer
    if storage.exists(beside):
        return beside
    report_uri = ShardsLayout.at(shards_uri).build_report
    if storage.exists(report_uri):
        recorded = json.loads(storage.read_text(report_uri)).get("tokenizer")
        if recorded and storage.exists(TokenizerLayout.file_uri(recorded)):
            return TokenizerLayout.file_uri(recorded)
    log.warning(
        "no tokenizer found for %s: pass --tokenizer so that generate/export work", shards_uri
    )
    return None


def check_tokenizer(uri: str, vocab_size: int, tokenizer_sha256: str, shards: str) -> bytes:
    """The tokenizer's bytes, after checking it is the one the shards were built with."""
    from tokenizers import Tokenizer

    data = storage.read_bytes(uri)
    if storage.sha256_bytes(data) != tokenizer_sha256:
        raise InputError(
            f"tokenizer {uri} is not the one the shards {shards} were built with "
            "(tokenizer_sha256 differs from the manifest); pass the right "
            "--tokenizer or rebuild the shards with this tokenizer"
        )
    size = Tokenizer.from_str(data.decode("utf-8")).get_vocab_size(with_added_tokens=True)
    if size != vocab_size:
        raise InputError(
            f"tokenizer {uri} has {size} tokens but the shards manifest says "
            f"vocab_size {vocab_size}; rebuild the shards with this tokenizer"
        )
    return data
