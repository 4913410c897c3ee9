"""Prefect tasks of the shard build: thin wrappers over `smelt.training.shard_writer`.

Every step is idempotent (`.done` markers), so task retries and flow reruns are both safe and
a rerun after a crash redoes only the unfinished partitions and shards.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from prefect import task
from prefect.cache_policies import NONE

from smelt.training import shard_writer
from smelt.training.shard_writer import BuildPlan


@task(name="plan-shards", cache_policy=NONE)
def plan_shards(
    corpus_uri: str, tokenizer_uri: str, output_uri: str, val_fraction: float, shard_tokens: int
) -> BuildPlan:
    """Validate the corpus and tokenizer and list the partitions."""
    return shard_writer.plan_build(
        corpus_uri, tokenizer_uri, output_uri, val_fraction, shard_tokens
    )


@task(
    name="tokenize-partition",
    task_run_name="tokenize-{index}",
    retries=2,
    retry_delay_seconds=5,
    cache_policy=NONE,
)
def tokenize_partition(plan: BuildPlan, index: int) -> dict[str, Any]:
    """One corpus partition to train/val token intermediates (skipped when already done)."""
    return shard_writer.tokenize_partition(plan, index)


@task(name="pack-shards", retries=2, retry_delay_seconds=5, cache_policy=NONE)
def pack_shards(plan: BuildPlan, parts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Concatenate the intermediates into fixed-size shards, uploaded and verified."""
    return [asdict(s) for s in shard_writer.pack_shards(plan, parts)]


@task(name="write-shards-manifest", retries=2, retry_delay_seconds=5, cache_policy=NONE)
def write_manifest(
    plan: BuildPlan, parts: list[dict[str, Any]], shards: list[dict[str, Any]]
) -> dict[str, Any]:
    """Build report, then manifest.json (last); returns a small summary."""
    from smelt.training.shard_format import ShardInfo

    manifest = shard_writer.finish_build(plan, parts, [ShardInfo(**s) for s in shards])
    return {
        "output": plan.output_uri,
        "shards": len(manifest.shards),
        "train_tokens": manifest.num_tokens("train"),
        "val_tokens": manifest.num_tokens("val"),
        "docs": sum(p["docs"] for p in parts),
        "empty_docs_skipped": sum(p["empty"] for p in parts),
        "vocab_size": manifest.vocab_size,
        "tokenizer_sha256": manifest.tokenizer_sha256,
    }
