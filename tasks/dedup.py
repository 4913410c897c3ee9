"""Prefect tasks over the dedup stages: URIs in, small manifests out."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NONE

from smelt.corpus.config import DedupConfig
from smelt.corpus.dedup import Shard, find_pairs, sign_partition, write_removals


@task(name="dedup-signatures", retries=1, cache_policy=NONE)
def signatures_task(partition_uri: str, dedup_uri: str, config: DedupConfig) -> dict[str, Any]:
    """MinHash signatures, exact keys and band keys of one partition (skipped when done)."""
    return sign_partition(partition_uri, dedup_uri, config)


@task(name="dedup-pairs", retries=1, cache_policy=NONE)
def pairs_task(
    range_index: int, range_count: int, shards: list[Shard], pairs_uri: str, config: DedupConfig
) -> dict[str, Any]:
    """Verified duplicate pairs of one band-key range."""
    return find_pairs(range_index, range_count, shards, pairs_uri, config)


@task(name="dedup-removals", retries=1, cache_policy=NONE)
def removals_task(
    pair_uris: list[str], partition_names: list[str], removals_uri: str
) -> tuple[list[str | None], dict[str, Any]]:
    """Clusters, survivors and one removal list per partition."""
    return write_removals(pair_uris, partition_names, removals_uri)
