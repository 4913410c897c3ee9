"""A run's output directory: where it lives, whether it is this run, where to resume from.

`OUTPUT` is a local path or an s3:// prefix. A local run writes everything in place; an S3 run
works in a local mirror (`SMELT_CACHE_DIR` or `~/.cache/smelt/runs/<hash of URI>`, or
`--cache-dir`) and the uploader copies it up. `OUTPUT/run.json` records the configuration the
run started with: another run's configuration there is refused unless `--force`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from dataclasses import dataclass
from typing import Any

from smelt import storage
from smelt.errors import ConfigError, InputError
from smelt.prep.layout import ShardsLayout, TokenizerLayout
from smelt.training import checkpoint
from smelt.training.config import TrainConfig

log = logging.getLogger(__name__)

RUN_FILE = "run.json"
TOKENIZER_FILE = TokenizerLayout.TOKENIZER  # a run keeps its tokenizer as OUTPUT/tokenizer.json
METRICS_FILE = "metrics.jsonl"


def cache_root() -> str:
    return os.environ.get("SMELT_CACHE_DIR") or os.path.join(
        os.path.expanduser("~"), ".cache", "smelt"
    )


@dataclass(frozen=True)
class RunDir:
    output: str  # normalized URI
    local_root: str  # local directory (the output itself when local)
    remote: str | None  # the s3:// output, or None for local runs

    @classmethod
    def for_output(cls, output: str, cache_dir: str | None = None) -> RunDir:
        output = storage.normalize(output)
        if not storage.is_s3(output):
            return cls(output, output, None)
        digest = hashlib.sha256(output.encode()).hexdigest()[:16]
        return cls(output, cache_dir or os.path.join(cache_root(), "runs", digest), output)

    def local(self, name: str) -> str:
        return os.path.join(self.local_root, name)

    # ---- identity --------------------------------------------------------------------------

    def recorded_config(self) -> TrainConfig | None:
        """The TrainConfig stored in OUTPUT/run.json, if this output already holds a run."""
        uri = storage.join(self.output, RUN_FILE)
        if not storage.exists(uri):
            return None
        try:
            return TrainConfig.from_dict(json.loads(storage.read_text(uri))["train_config"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(
                f"{uri} is not a smelt run file ({exc}); choose another --output"
            ) from None

    def check_same_run(self, config: TrainConfig) -> None:
        """Refuse an output that holds another run, unless --force."""
        recorded = self.recorded_config()
        checkpoints = self.complete_steps()
        if config.resume == "never" and (recorded or checkpoints):
            if not config.force:
                raise ConfigError(
                    f"{self.output} already holds a run ({len(checkpoints)} checkpoints) and "
                    "--resume never was given; choose another --output, resume it with "
                    "--resume auto, or pass --force to discard it"
                )
            self.discard()
            return
        if recorded is None:
            return
        differences = config.differences(recorded)
        if differences and not config.force:
            listed = ", ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in differences.items())
            raise ConfigError(
                f"{self.output} holds a run with a different configuration ({listed}); choose "
                "another --output, or pass --force to resume it with the new settings"
            )
        if differences:
            log.warning("resuming %s with changed settings: %s", self.output, differences)

    def discard(self) -> None:
        """Delete a previous run's checkpoints and metrics (--resume never --force)."""
        for root in filter(None, [self.remote, self.local_root]):
            for step_uri in checkpoint.complete_steps(root).values():
                storage.delete(storage.join(step_uri, checkpoint.MARKER))
                storage.delete(step_uri, recursive=True)
            for name in (METRICS_FILE, RUN_FILE, "tb"):
                storage.delete(storage.join(root, name), recursive=True)
        log.warning("discarded the previous run in %s", self.output)

    def write_run_file(
        self, config: TrainConfig, model_config: dict[str, Any], world_size: int
    ) -> None:
        record = {
            "train_config": config.to_dict(),
            "model_config": model_config,
            "world_size": world_size,
        }
        text = json.dumps(record, indent=1, sort_keys=True)
        storage.write_text(self.local(RUN_FILE), text)
        if self.remote:
            storage.write_text(storage.join(self.remote, RUN_FILE), text)

    # ---- checkpoints -----------------------------------------------------------------------

    def complete_steps(self) -> dict[int, str]:
        """Complete checkpoints, remote and local; the local copy wins for equal steps."""
        found = checkpoint.complete_steps(self.remote) if self.remote else {}
        found.update(checkpoint.complete_steps(self.local_root))
        return dict(sorted(found.items()))

    def clean_partial(self) -> None:
        """Remove the hidden temporary directories of checkpoint writes a crash interrupted."""
        if not os.path.isdir(self.local_root):
            return
        for name in os.listdir(self.local_root):
            if name.startswith(".step_"):
                shutil.rmtree(os.path.join(self.local_root, name), ignore_errors=True)

    def fetch(self, step: int, uri: str) -> str:
        """A verified local copy of checkpoint `uri`."""
        local = self.local(checkpoint.step_name(step))
        if storage.normalize(uri) == storage.normalize(local):
            checkpoint.verify_local(local)
            return local
        os.makedirs(self.local_root, exist_ok=True)
        return checkpoint.download(uri, local)

    def remote_has(self, step: int) -> bool:
        if not self.remote:
            return True
        step_uri = storage.join(self.remote, checkpoint.step_name(step))
        return storage.exists(storage.join(step_uri, checkpoint.MARKER))

    def restore_metrics(self) -> None:
        """Bring the remote metrics.jsonl into a fresh local mirror."""
        local = self.local(METRICS_FILE)
        remote = storage.join(self.remote, METRICS_FILE) if self.remote else None
        if remote and not os.path.exists(local) and storage.exists(remote):
            storage.get_file(remote, local)


# ---- tokenizer ------------------------------------------------------------------------------


def resolve_tokenizer(config: TrainConfig) -> str | None:
    """The tokenizer URI: --tokenizer, else <shards>/tokenizer.json, else the one the shards'
    build report names; None when none can be found (generate/export then need one)."""
    if config.tokenizer:
        uri = TokenizerLayout.file_uri(config.tokenizer)
        if not storage.exists(uri):
            raise InputError(
                f"tokenizer not found: {uri}; pass the tokenizer.json the shards "
                "were built with (--tokenizer)"
            )
        return uri
    beside = TokenizerLayout.at(config.shards).tokenizer
    if storage.exists(beside):
        return beside
    report_uri = ShardsLayout.at(config.shards).build_report
    if storage.exists(report_uri):
        recorded = json.loads(storage.read_text(report_uri)).get("tokenizer")
        if recorded:
            uri = TokenizerLayout.file_uri(recorded)
            if storage.exists(uri):
                return uri
    log.warning(
        "no tokenizer found for %s: pass --tokenizer so that generate/export work", config.shards
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


# ---- locating a checkpoint for generate/export ----------------------------------------------


def locate_checkpoint(uri: str, cache_dir: str | None = None) -> tuple[str, str | None]:
    """(local step directory, local tokenizer.json or None) for a run URI or a step URI."""
    uri = storage.normalize(uri)
    if storage.exists(storage.join(uri, checkpoint.MARKER)):
        step_uri, run_uri = uri, storage.parent(uri)
    else:
        steps = checkpoint.complete_steps(uri)
        if not steps:
            raise InputError(
                f"no complete checkpoint under {uri}: pass a run's --output or one "
                "of its step_NNNNNNNN directories"
            )
        step_uri, run_uri = steps[max(steps)], uri
    if not storage.is_s3(step_uri):
        checkpoint.verify_local(step_uri)
        tokenizer = os.path.join(run_uri, TOKENIZER_FILE)
        return step_uri, tokenizer if os.path.exists(tokenizer) else None
    run = RunDir.for_output(run_uri, cache_dir)
    step = checkpoint.parse_step(storage.basename(step_uri))
    local_step = run.fetch(step if step is not None else 0, step_uri)
    remote_tok = storage.join(run_uri, TOKENIZER_FILE)
    if not storage.exists(remote_tok):
        return local_step, None
    storage.get_file(remote_tok, run.local(TOKENIZER_FILE))
    return local_step, run.local(TOKENIZER_FILE)


def copy_tokenizer(data: bytes, run: RunDir) -> None:
    """Put the run's tokenizer at OUTPUT/tokenizer.json (generate and export read it there)."""
    storage.write_bytes(run.local(TOKENIZER_FILE), data)
    if run.remote:
        storage.write_bytes(storage.join(run.remote, TOKENIZER_FILE), data)
