"""How the dedup stages fit together: the shard list, the number of key ranges, and a
sequential reference run of all stages (what the Prefect flow distributes)."""

from __future__ import annotations

import json
import math

from smelt import storage
from smelt.corpus.config import DedupConfig
from smelt.corpus.dedup.layout import (
    PartitionState,
    partition_name,
    partition_state,
    previous_corpus,
    write_meta,
)
from smelt.corpus.dedup.pairs import Shard, find_pairs
from smelt.corpus.dedup.removal import write_removals
from smelt.corpus.dedup.signing import sign_partition


def dedup_dir(output_uri: str) -> str:
    """The corpus's persistent dedup state."""
    return storage.join(output_uri, "dedup")


def shards(
    dedup_uri: str,
    names: list[str],
    earlier: list[list[PartitionState]],
    versions: list[str] | None = None,
) -> list[Shard]:
    """Source 0: this build's partitions (with their signing fingerprints as versions);
    source i: the i-th `--dedup-against` corpus."""
    own = [partition_state(dedup_uri, name) for name in names]
    own_versions = versions or [""] * len(names)
    return [
        Shard(
            source,
            index,
            state.bands_uri,
            state.signatures_uri,
            own_versions[index] if source == 0 else "",
        )
        for source, states in enumerate([own, *earlier])
        for index, state in enumerate(states)
    ]


def earlier_corpora(dedup_against: list[str], config: DedupConfig) -> list[list[PartitionState]]:
    """Stored partitions of each `--dedup-against` corpus (parameters checked)."""
    return [previous_corpus(uri, config) for uri in dedup_against]


def range_count(band_rows: int, config: DedupConfig) -> int:
    """Key ranges (pair tasks): at least `bucket_partitions`, at most `max_range_rows` each."""
    return max(config.bucket_partitions, math.ceil(band_rows / config.max_range_rows))


def earlier_band_rows(dedup_against: list[str], config: DedupConfig) -> int:
    """Band rows of the `--dedup-against` corpora, estimated from their document counts."""
    docs = sum(
        int(json.loads(storage.read_text(storage.join(uri, "dedup", "meta.json"))).get("docs", 0))
        for uri in dedup_against
    )
    return docs * (config.num_bands + 1)


def pairs_uri(work_uri: str, index: int) -> str:
    """Where key range `index` writes its verified pairs."""
    return storage.join(work_uri, "dedup", "pairs", f"range-{index:05d}.parquet")


def deduplicate(
    partition_uris: list[str],
    work_uri: str,
    output_uri: str,
    config: DedupConfig,
    dedup_against: list[str] | None = None,
) -> list[str | None]:
    """All stages in this process, one after the other (reference for the distributed flow)."""
    dedup_uri = dedup_dir(output_uri)
    earlier = earlier_corpora(dedup_against or [], config)
    manifests = [sign_partition(uri, dedup_uri, config) for uri in partition_uris]
    names = [partition_name(uri) for uri in partition_uris]
    write_meta(dedup_uri, config, names, sum(m["docs"] for m in manifests))
    rows = sum(m["band_rows"] for m in manifests) + earlier_band_rows(dedup_against or [], config)
    count = range_count(rows, config)
    all_shards = shards(dedup_uri, names, earlier, [m["fingerprint"] for m in manifests])
    pair_manifests = [
        find_pairs(i, count, all_shards, pairs_uri(work_uri, i), config) for i in range(count)
    ]
    uris, _ = write_removals(
        [m["uri"] for m in pair_manifests], names, storage.join(work_uri, "dedup", "removals")
    )
    return uris
