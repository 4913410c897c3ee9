"""Stage 2 of dedup, per key range: candidate pairs from shared band keys, verified.

A task owns one range of the int64 key space. It reads that range from every partition's
band file (row groups outside it are skipped), groups rows by (band, key), and turns each group
of two or more documents into candidate pairs. Candidates are verified against the stored
signatures (reading only the small row groups that hold them): a pair is kept when its estimated
Jaccard reaches `jaccard_threshold`, or, for exact keys, when text hashes and signatures are
equal. Memory is bounded by the range size, which the flow chooses from the row count.

Documents are referred to by a packed int64 `ref` = source << 56 | partition << 32 | row, where
source 0 is the corpus being built and 1.. are earlier corpora (`--dedup-against`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from smelt import storage
from smelt.corpus import tables
from smelt.corpus.config import DedupConfig
from smelt.corpus.dedup.exact import EXACT_BAND
from smelt.corpus.dedup.layout import DedupLayout
from smelt.corpus.dedup.lsh import key_range
from smelt.corpus.dedup.minhash import estimated_jaccard
from smelt.storage.stage import Marker, fingerprint, run_once

log = logging.getLogger(__name__)

ALL_PAIRS_MAX = 16  # groups up to this size yield every pair; larger ones a star and a chain
PAIR_SCHEMA = pa.schema(
    [
        ("a", pa.int64()),
        ("b", pa.int64()),
        ("a_id", pa.string()),
        ("b_id", pa.string()),
        ("a_length", pa.int64()),
        ("b_length", pa.int64()),
        ("a_exact", pa.int64()),
        ("b_exact", pa.int64()),
        ("jaccard", pa.float32()),
    ]
)


def pack_ref(source: int, partition: int, row: np.ndarray | int) -> np.ndarray | int:
    """Packed document reference (see module docstring)."""
    return (source << 56) | (partition << 32) | row


def unpack_ref(ref: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(source, partition, row) of packed refs."""
    return ref >> 56, (ref >> 32) & 0xFFFFFF, ref & 0xFFFFFFFF


@dataclass(frozen=True)
class Shard:
    """One partition's stored files, as the pair stage sees them."""

    source: int
    partition: int
    bands_uri: str
    signatures_uri: str
    version: str = ""  # fingerprint of the signing step: a re-signed partition reruns pairs
    excluded: tuple[int, ...] = ()  # rows that are no references (superseded documents)


def read_range(shards: list[Shard], low: int, high: int | None) -> tuple[np.ndarray, ...]:
    """(key, band, ref) of every band row with low <= key < high, over all shards."""
    keys, bands, refs = [], [], []
    filters = [("key", ">=", low)] + ([("key", "<", high)] if high is not None else [])
    for shard in shards:
        table = tables.read_table(shard.bands_uri, filters=filters)
        rows = table.column("row").to_numpy().astype(np.int64)
        if shard.excluded:
            keep = ~np.isin(rows, np.asarray(shard.excluded, np.int64))
            table, rows = table.filter(pa.array(keep)), rows[keep]
        keys.append(table.column("key").to_numpy())
        bands.append(table.column("band").to_numpy())
        refs.append(pack_ref(shard.source, shard.partition, rows))
    if not keys:
        return np.zeros(0, np.int64), np.zeros(0, np.int16), np.zeros(0, np.int64)
    return np.concatenate(keys), np.concatenate(bands), np.concatenate(refs)


def candidate_pairs(keys: np.ndarray, bands: np.ndarray, refs: np.ndarray) -> np.ndarray:
    """Unique (a, b) ref pairs, a < b, of documents sharing a (band, key); (n, 2) int64.

    Pairs whose both sides belong to earlier corpora are dropped: they decide nothing here.
    """
    order = np.lexsort((refs, keys, bands))
    keys, bands, refs = keys[order], bands[order], refs[order]
    boundary = np.flatnonzero((np.diff(keys) != 0) | (np.diff(bands) != 0)) + 1
    starts = np.concatenate([[0], boundary])
    ends = np.concatenate([boundary, [len(keys)]])
    found = []
    for start, end in zip(starts[ends - starts > 1], ends[ends - starts > 1], strict=True):
        members = np.unique(refs[start:end])
        if len(members) < 2:
            continue
        if len(members) <= ALL_PAIRS_MAX:
            left, right = np.triu_indices(len(members), k=1)
            found.append(np.stack([members[left], members[right]], axis=1))
        else:  # star on the first member plus a chain: connected with O(n) edges
            star = np.stack([np.repeat(members[0], len(members) - 1), members[1:]], axis=1)
            chain = np.stack([members[1:-1], members[2:]], axis=1)
            found.extend([star, chain])
    if not found:
        return np.zeros((0, 2), np.int64)
    pairs = np.unique(np.concatenate(found), axis=0)
    both_earlier = ((pairs[:, 0] >> 56) > 0) & ((pairs[:, 1] >> 56) > 0)
    return pairs[~both_earlier]


def lookup(shards: list[Shard], refs: np.ndarray) -> dict[str, np.ndarray]:
    """id, length, exact and signature of each of the sorted unique `refs`."""
    by_shard = {(shard.source, shard.partition): shard for shard in shards}
    sources, partitions, rows = unpack_ref(refs)
    columns: dict[str, list[Any]] = {"id": [], "length": [], "exact": [], "sig": []}
    # sorted packed refs are sorted by (source, partition, row): shard by shard, rows in order
    for source, partition in sorted(set(zip(sources.tolist(), partitions.tolist(), strict=True))):
        mask = (sources == source) & (partitions == partition)
        table = _read_rows(by_shard[(source, partition)].signatures_uri, rows[mask])
        columns["id"].extend(table.column("id").to_pylist())
        columns["length"].append(table.column("length").to_numpy())
        columns["exact"].append(table.column("exact").to_numpy())
        sig = table.column("sig").combine_chunks()
        width = sig.type.byte_width // 4
        columns["sig"].append(
            np.frombuffer(
                sig.buffers()[1], dtype="<u4", count=len(sig) * width, offset=sig.offset * width * 4
            ).reshape(len(sig), width)
        )
    return {
        "id": np.array(columns["id"], dtype=object),
        "length": np.concatenate(columns["length"]),
        "exact": np.concatenate(columns["exact"]),
        "sig": np.concatenate(columns["sig"]),
    }


def _read_rows(signatures_uri: str, rows: np.ndarray) -> pa.Table:
    """Rows `rows` (sorted) of a signature file, reading only the row groups that hold them."""
    fs, path = storage.filesystem(signatures_uri)
    with fs.open(path, "rb") as handle:
        parquet = pq.ParquetFile(handle)
        sizes = np.array(
            [parquet.metadata.row_group(i).num_rows for i in range(parquet.num_row_groups)],
            dtype=np.int64,
        )
        group_starts = np.concatenate([[0], np.cumsum(sizes)])
        group_of_row = np.searchsorted(group_starts, rows, side="right") - 1
        groups = np.unique(group_of_row)
        table = parquet.read_row_groups(groups.tolist(), columns=["id", "length", "exact", "sig"])
    read_starts = np.concatenate([[0], np.cumsum(sizes[groups])])
    local = rows - group_starts[group_of_row] + read_starts[np.searchsorted(groups, group_of_row)]
    return table.take(pa.array(local))


def verify(pairs: np.ndarray, shards: list[Shard], config: DedupConfig) -> pa.Table:
    """Keep candidate pairs that are near (estimated Jaccard) or exact duplicates."""
    if len(pairs) == 0:
        return PAIR_SCHEMA.empty_table()
    refs = np.unique(pairs)
    docs = lookup(shards, refs)
    left, right = np.searchsorted(refs, pairs[:, 0]), np.searchsorted(refs, pairs[:, 1])
    jaccard = estimated_jaccard(docs["sig"][left], docs["sig"][right])
    exact = (docs["exact"][left] == docs["exact"][right]) & (jaccard == 1.0)
    keep = np.zeros(len(pairs), bool)
    if config.near:
        keep |= jaccard >= config.jaccard_threshold
    if config.exact:
        keep |= exact
    left, right = left[keep], right[keep]
    return pa.table(
        {
            "a": refs[left],
            "b": refs[right],
            "a_id": docs["id"][left],
            "b_id": docs["id"][right],
            "a_length": docs["length"][left],
            "b_length": docs["length"][right],
            "a_exact": docs["exact"][left],
            "b_exact": docs["exact"][right],
            "jaccard": jaccard[keep].astype(np.float32),
        },
        schema=PAIR_SCHEMA,
    )


def find_pairs(
    range_index: int,
    range_count: int,
    shards: list[Shard],
    layout: DedupLayout,
    config: DedupConfig,
) -> dict[str, Any]:
    """Verified duplicate pairs of one key range, written to `layout.pairs(range_index)`
    (resumable)."""
    pairs_uri = layout.pairs(range_index)
    marker = Marker(
        layout.pairs_done(range_index),
        fingerprint(
            range_index,
            range_count,
            [vars(s) for s in shards],
            config.jaccard_threshold,
            config.exact,
            config.near,
        ),
    )
    return run_once(
        marker, lambda: _find_pairs(range_index, range_count, shards, pairs_uri, config)
    )


def _find_pairs(
    range_index: int, range_count: int, shards: list[Shard], pairs_uri: str, config: DedupConfig
) -> dict[str, Any]:
    started = time.perf_counter()
    low, high = key_range(range_index, range_count)
    keys, bands, refs = read_range(shards, low, high)
    if not config.exact:
        keep = bands != EXACT_BAND
        keys, bands, refs = keys[keep], bands[keep], refs[keep]
    candidates = candidate_pairs(keys, bands, refs)
    verified = verify(candidates, shards, config)
    tables.write_table(pairs_uri, verified)
    log.info(
        "key range %d/%d: %d band rows, %d candidates, %d verified pairs",
        range_index,
        range_count,
        len(keys),
        len(candidates),
        verified.num_rows,
    )
    return {
        "range": range_index,
        "band_rows": len(keys),
        "candidates": len(candidates),
        "pairs": verified.num_rows,
        "uri": pairs_uri,
        "seconds": round(time.perf_counter() - started, 3),
    }
