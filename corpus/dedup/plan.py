"""How the dedup stages fit together, written once: signatures per partition, verified pairs per
band-key range, removal lists. `deduplicate` runs them on any `smelt.parallel.Executor`: this
process, a warm process pool, or Prefect task runs (each partition and key range one task)."""

from __future__ import annotations

import json
import logging
import math

from smelt import storage
from smelt.corpus.config import DedupConfig
from smelt.corpus.dedup.layout import (
    DedupLayout,
    PartitionState,
    partition_name,
    previous_corpus,
    superseded_rows,
    write_meta,
)
from smelt.corpus.dedup.pairs import Shard, find_pairs
from smelt.corpus.dedup.removal import write_removals
from smelt.corpus.dedup.signing import sign_partition
from smelt.parallel import Executor, LocalExecutor

log = logging.getLogger(__name__)


def shards(
    layout: DedupLayout,
    names: list[str],
    earlier: list[list[PartitionState]],
    versions: list[str] | None = None,
    excluded: dict[tuple[int, int], tuple[int, ...]] | None = None,
) -> list[Shard]:
    """Source 0: this build's partitions (with their signing fingerprints as versions);
    source i: the i-th `--dedup-against` corpus, less its `excluded` rows per (source, index)."""
    own = [layout.partition(name) for name in names]
    own_versions = versions or [""] * len(names)
    excluded = excluded or {}
    return [
        Shard(
            source,
            index,
            state.bands_uri,
            state.signatures_uri,
            own_versions[index] if source == 0 else "",
            excluded.get((source, index), ()),
        )
        for source, states in enumerate([own, *earlier])
        for index, state in enumerate(states)
    ]


def excluded_rows(
    dedup_against: list[str],
    earlier: list[list[PartitionState]],
    superseded: dict[str, set[str]],
) -> dict[tuple[int, int], tuple[int, ...]]:
    """(source, partition index) -> rows of earlier corpora's superseded documents, which are
    no references: the new version of a changed object must not lose to the one it replaces."""
    found: dict[tuple[int, int], tuple[int, ...]] = {}
    for source, (uri, states) in enumerate(zip(dedup_against, earlier, strict=True), start=1):
        sources = superseded.get(storage.normalize(uri))
        for index, state in enumerate(states if sources else []):
            rows = superseded_rows(uri, state, sources)
            if rows:
                found[(source, index)] = rows
    return found


def earlier_corpora(dedup_against: list[str], config: DedupConfig) -> list[list[PartitionState]]:
    """Stored partitions of each `--dedup-against` corpus (parameters checked)."""
    return [previous_corpus(uri, config) for uri in dedup_against]


def range_count(band_rows: int, config: DedupConfig) -> int:
    """Key ranges (pair tasks): at least `bucket_partitions`, at most `max_range_rows` each."""
    return max(config.bucket_partitions, math.ceil(band_rows / config.max_range_rows))


def earlier_band_rows(dedup_against: list[str], config: DedupConfig) -> int:
    """Band rows of the `--dedup-against` corpora, estimated from their document counts."""
    docs = sum(
        int(json.loads(storage.read_text(DedupLayout.of(uri).meta)).get("docs", 0))
        for uri in dedup_against
    )
    return docs * (config.num_bands + 1)


def deduplicate(
    partition_uris: list[str],
    work_uri: str,
    output_uri: str,
    config: DedupConfig,
    dedup_against: list[str] | None = None,
    executor: Executor | None = None,
    superseded: dict[str, set[str]] | None = None,
) -> list[str | None]:
    """Per partition (same order), the URI of its removal list (row, id, kind) or None.

    `superseded` maps an earlier corpus to the sources whose documents there are replaced
    (`smelt.corpus.supersede`): those documents are left out of the references.
    Signatures and band keys persist under `OUTPUT/dedup/` (reused by a later build's
    `--dedup-against OUTPUT`); pairs and removal lists go under `WORK/dedup/`. Every step is
    skipped on a rerun when its marker says it finished with the same inputs.
    """
    if not partition_uris or not (config.exact or config.near):
        return [None] * len(partition_uris)
    executor = executor or LocalExecutor(1)
    layout = DedupLayout.of(output_uri, work_uri)
    earlier = earlier_corpora(dedup_against or [], config)  # fail fast on a mismatched corpus
    count = len(partition_uris)
    manifests = executor.map(
        sign_partition, partition_uris, [layout] * count, [config] * count, name="dedup-sign"
    )
    names = [partition_name(uri) for uri in partition_uris]
    write_meta(layout, config, names, sum(m["docs"] for m in manifests))
    rows = sum(m["band_rows"] for m in manifests) + earlier_band_rows(dedup_against or [], config)
    ranges = range_count(rows, config)
    excluded = excluded_rows(dedup_against or [], earlier, superseded or {})
    all_shards = shards(layout, names, earlier, [m["fingerprint"] for m in manifests], excluded)
    log.info(
        "dedup: %d partitions signed, %d band rows -> %d key ranges, %d earlier corpora",
        count,
        rows,
        ranges,
        len(earlier),
    )
    found = executor.map(
        find_pairs,
        range(ranges),
        [ranges] * ranges,
        [all_shards] * ranges,
        [layout] * ranges,
        [config] * ranges,
        name="dedup-pairs",
    )
    [(uris, summary)] = executor.map(
        write_removals,
        [[manifest["uri"] for manifest in found]],
        [names],
        [layout.removals],
        [partition_uris],
        [layout.clusters],
        name="dedup-removals",
    )
    log.info("dedup: %d verified pairs, removing %s", summary["pairs"], summary["removed"])
    return uris
