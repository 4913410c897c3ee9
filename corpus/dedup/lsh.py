"""LSH band keys and the bucket rows that are shuffled by key range.

Each document contributes one row per band: `key` = a 64-bit hash of (band index, the band's
`r` signature values). Two documents share a row key exactly when that band agrees. Keys are
uniform over int64, so the bucket stage splits the key space into equal ranges, one task per
range; every partition's band file is sorted by key (with row-group statistics), so a task
reads only the row groups overlapping its range. The number of ranges is chosen when the
bucket stage starts (from the row count), which keeps each task's memory bounded whatever the
corpus size, and lets a later build read an earlier corpus's band files with its own ranges.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from smelt.corpus.dedup.exact import EXACT_BAND
from smelt.corpus.dedup.shingles import mix64

BAND_SCHEMA = pa.schema([("key", pa.int64()), ("band", pa.int16()), ("row", pa.int32())])
_KEY_MIX = 0x9E3779B97F4A7C15


def band_keys(sigs: np.ndarray, num_bands: int, rows_per_band: int) -> np.ndarray:
    """(docs, num_bands) int64 keys of each band of each (docs, num_bands*rows) signature."""
    docs = sigs.shape[0]
    keys = np.empty((docs, num_bands), dtype=np.uint64)
    wide = sigs.astype(np.uint64)
    for band in range(num_bands):
        key = np.full(docs, ((band + 1) * _KEY_MIX) % (1 << 64), dtype=np.uint64)
        for column in range(band * rows_per_band, (band + 1) * rows_per_band):
            key = mix64(key ^ wide[:, column])
        keys[:, band] = key
    return keys.view(np.int64)


def band_rows(
    sigs: np.ndarray,
    shingle_counts: np.ndarray,
    exact: np.ndarray | None,
    num_bands: int,
    rows_per_band: int,
    near: bool,
) -> pa.Table:
    """Bucket rows (key, band, row) of one partition, sorted by key.

    Documents without shingles get no band rows (their all-max signatures would all collide);
    `exact` keys (or None) add one row per document in band `EXACT_BAND`.
    """
    keys, bands, rows = [], [], []
    if near:
        comparable = np.flatnonzero(shingle_counts > 0)
        if len(comparable):
            matrix = band_keys(sigs[comparable], num_bands, rows_per_band)
            keys.append(matrix.ravel())
            bands.append(np.tile(np.arange(num_bands, dtype=np.int16), len(comparable)))
            rows.append(np.repeat(comparable.astype(np.int32), num_bands))
    if exact is not None and len(exact):
        keys.append(exact.astype(np.int64))
        bands.append(np.full(len(exact), EXACT_BAND, dtype=np.int16))
        rows.append(np.arange(len(exact), dtype=np.int32))
    if not keys:
        return BAND_SCHEMA.empty_table()
    key = np.concatenate(keys)
    order = np.argsort(key, kind="stable")
    return pa.table(
        {
            "key": key[order],
            "band": np.concatenate(bands)[order],
            "row": np.concatenate(rows)[order],
        },
        schema=BAND_SCHEMA,
    )


def key_range(index: int, count: int) -> tuple[int, int | None]:
    """[low, high) of the `index`-th of `count` equal int64 key ranges; the last range's high
    is None (open to the top of int64)."""
    span = 1 << 64
    low = -(1 << 63) + span * index // count
    high = -(1 << 63) + span * (index + 1) // count
    return low, (None if index == count - 1 else high)
