"""Tokenize a corpus into uint32 train/val shards: deterministic, resumable, verified uploads.

The build is written once, here, as steps on an `smelt.parallel.Executor`:

    plan -> tokenize (one item per corpus partition) -> pack (one item per shard) -> manifest

Plain callers (tests, notebooks, benchmarks) run it on a `LocalExecutor` (`build_shards`);
the `shards-build` flow runs the very same `run_build` on a `PrefectExecutor`, so each
partition and each shard is a task run. Every step is a resumable stage
(`smelt.storage.stage`): a rerun after a crash redoes only unfinished partitions and shards,
and a rerun of a finished build with the same inputs (`is_current`) does nothing at all.

`finish_build` writes `build_report.json` (counts and the build's fingerprint), then the
manifest last, then drops the work files.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from smelt import storage
from smelt.errors import InputError, SmeltError
from smelt.parallel import Executor, LocalExecutor
from smelt.prep.layout import ShardsLayout
from smelt.prep.packing import pack_shard, plan_pieces, remove_stale
from smelt.prep.shard_format import SPLITS, Manifest, ShardInfo, open_manifest
from smelt.prep.shard_plan import (
    DEFAULT_SHARD_TOKENS,
    DEFAULT_VAL_FRACTION,
    BuildPlan,
    plan_build,
)
from smelt.prep.tokenize import tokenize_partition
from smelt.storage.stage import Marker

log = logging.getLogger(__name__)

# what a worker process imports once, before it is forked (smelt.parallel.LocalExecutor)
PRELOAD = ("smelt.prep.tokenize", "smelt.prep.packing", "tokenizers", "pyarrow.parquet")

__all__ = [
    "DEFAULT_SHARD_TOKENS",
    "DEFAULT_VAL_FRACTION",
    "PRELOAD",
    "BuildPlan",
    "BuildResult",
    "build_shards",
    "check_replaceable",
    "fingerprint_for",
    "is_current",
    "plan_build",
    "run_build",
]


@dataclass(frozen=True)
class BuildResult:
    """A finished shard set: its manifest, its build report, and whether this call built it."""

    manifest: Manifest
    report: dict[str, Any]
    skipped: bool

    def summary(self) -> dict[str, Any]:
        """The small summary a flow returns and publishes."""
        return {
            "output": self.manifest.root,
            "shards": len(self.manifest.shards),
            "train_tokens": self.manifest.num_tokens("train"),
            "val_tokens": self.manifest.num_tokens("val"),
            "docs": self.report["docs"],
            "empty_docs_skipped": self.report["empty_docs_skipped"],
            "vocab_size": self.manifest.vocab_size,
            "tokenizer_sha256": self.manifest.tokenizer_sha256,
            "skipped": self.skipped,
        }


def build_shards(
    corpus_uri: str,
    tokenizer_uri: str,
    output_uri: str,
    val_fraction: float = DEFAULT_VAL_FRACTION,
    shard_tokens: int = DEFAULT_SHARD_TOKENS,
    workers: int = 1,
    force: bool = False,
) -> BuildResult:
    """The whole build on `workers` local processes (the `shards-build` flow runs the same)."""
    plan = plan_build(corpus_uri, tokenizer_uri, output_uri, val_fraction, shard_tokens)
    with LocalExecutor(workers, preload=PRELOAD) as executor:
        return run_build(plan, executor, force)


def run_build(plan: BuildPlan, executor: Executor, force: bool = False) -> BuildResult:
    """Tokenize, pack and publish on `executor`.

    A shard set already there and current for the plan's inputs is kept (nothing runs); an
    interrupted build resumes from its finished partitions and shards. `force` rebuilds from
    scratch.
    """
    layout, marker = plan.layout, build_marker(plan)
    if not force and is_current(plan.output_uri, plan.fingerprint):
        log.info("shards at %s are current: nothing to build", plan.output_uri)
        return BuildResult(open_manifest(plan.output_uri), marker.read() or {}, skipped=True)
    check_replaceable(plan, force)
    storage.delete(layout.manifest)  # the dataset is about to change: no longer finished
    marker.clear()
    if force:
        storage.delete(layout.work_dir, recursive=True)
    count = len(plan.partitions)
    parts = executor.map(tokenize_partition, [plan] * count, range(count), name="tokenize")
    splits, numbers, pieces = [], [], []
    for split in SPLITS:
        planned = plan_pieces(plan, split, parts)
        splits += [split] * len(planned)
        numbers += range(len(planned))
        pieces += planned
        remove_stale(plan, split, len(planned))
    entries = executor.map(pack_shard, [plan] * len(splits), splits, numbers, pieces, name="pack")
    shards = [ShardInfo(**entry) for entry in entries]
    return finish_build(plan, parts, shards)


def finish_build(
    plan: BuildPlan, parts: list[dict[str, Any]], shards: list[ShardInfo]
) -> BuildResult:
    """Write the build report (with the fingerprint), then the manifest (last); drop _work."""
    layout = plan.layout
    manifest = Manifest(
        plan.vocab_size, plan.eos_id, plan.tokenizer_sha256, tuple(shards), root=plan.output_uri
    )
    report: dict[str, Any] = {
        "corpus": plan.corpus.root,
        "tokenizer": plan.tokenizer_uri,
        "partitions": len(plan.partitions),
        "val_fraction": plan.val_fraction,
        "shard_tokens": plan.shard_tokens,
        "shards": len(shards),
        "docs": sum(p["docs"] for p in parts),
        "empty_docs_skipped": sum(p["empty"] for p in parts),
        "superseded_docs_skipped": sum(p.get("superseded", 0) for p in parts),
    }
    for split in SPLITS:
        report[f"{split}_docs"] = sum(p["splits"][split]["num_docs"] for p in parts)
        report[f"{split}_tokens"] = sum(p["splits"][split]["num_tokens"] for p in parts)
    record = build_marker(plan).write(report)
    storage.write_text(layout.manifest, manifest.to_json())
    storage.delete(layout.work_dir, recursive=True)
    return BuildResult(manifest, record, skipped=False)


def check_replaceable(plan: BuildPlan, force: bool = False) -> None:
    """Refuse, before anything is written, to replace a finished shard set built from another
    corpus or another tokenizer (a training run may be reading it), unless `force`.

    The same corpus and tokenizer with other settings, or rebuilt in place, make the set stale
    and it is rebuilt; a set smelt did not record building (no build report) is left alone.
    """
    layout = plan.layout
    if force or not storage.exists(layout.manifest):
        return
    report = Marker(layout.build_report).read()
    if report is None:
        raise InputError(
            f"{plan.output_uri} holds a shard set without {storage.basename(layout.build_report)}"
            " (not built by smelt here); use a new --output, or --force to replace it"
        )
    other = [
        f"{label} {report.get(label)}"
        for label, ours in (("corpus", plan.corpus.root), ("tokenizer", plan.tokenizer_uri))
        if report.get(label) != ours
    ]
    if other:
        raise InputError(
            f"{plan.output_uri} holds shards of another {' and '.join(other)}; use a new "
            "--output, or --force to replace them"
        )


def build_marker(plan: BuildPlan) -> Marker:
    """The build report as the marker of the whole set (the manifest follows it)."""
    return Marker(plan.layout.build_report, plan.fingerprint)


def fingerprint_for(
    corpus_uri: str,
    tokenizer_uri: str,
    val_fraction: float = DEFAULT_VAL_FRACTION,
    shard_tokens: int = DEFAULT_SHARD_TOKENS,
) -> str:
    """The fingerprint a shard set built from these inputs and settings records."""
    # a plan needs an output, its fingerprint does not depend on it
    return plan_build(corpus_uri, tokenizer_uri, "", val_fraction, shard_tokens).fingerprint


def recorded_fingerprint(uri: str) -> str | None:
    """The fingerprint of the inputs a finished shard set at `uri` was built from, or None."""
    report = Marker(ShardsLayout.at(uri).build_report).read()
    return None if report is None else report.get("fingerprint")


def is_current(uri: str, fingerprint: str) -> bool:
    """Whether the shard set at `uri` is finished, whole, and built from `fingerprint`'s inputs.

    Finished and whole: its manifest is there and lists files present with their sizes (one
    listing, no data read). Built from these inputs: its build report carries `fingerprint`.
    """
    layout = ShardsLayout.at(uri)
    if not Marker(layout.build_report, fingerprint).done() or not storage.exists(layout.manifest):
        return False
    try:
        open_manifest(layout.root)
    except SmeltError as exc:
        log.warning("shards at %s are not usable (%s): they will be built again", uri, exc)
        return False
    return True
