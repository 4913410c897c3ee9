"""Stage 1 of dedup, per partition: signatures, exact keys and band rows, persisted.

Memory is bounded by one partition (documents are shingled `BATCH_DOCS` at a time); the
outputs are the partition's signature file and its key-sorted band file (see layout.py).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import pyarrow as pa

from smelt import storage
from smelt.corpus import tables
from smelt.corpus.config import DedupConfig
from smelt.corpus.dedup.exact import exact_keys
from smelt.corpus.dedup.layout import DedupLayout, partition_name, signature_params
from smelt.corpus.dedup.lsh import band_rows
from smelt.corpus.dedup.minhash import signatures
from smelt.storage.stage import Marker, fingerprint, run_once

log = logging.getLogger(__name__)

BATCH_DOCS = 4096
SIGNATURE_ROW_GROUP = 1024  # small row groups: the pair stage reads single documents' rows
BAND_ROW_GROUP = 65536


def signature_table(
    ids: list[str], texts: list[str], config: DedupConfig, sources: list[str] | None = None
) -> tuple[pa.Table, np.ndarray]:
    """One row per document (id, length, exact, shingles, sig, and `source` when given) and the
    (docs, P) signatures. The source lets a later build leave out the documents of an input
    object it supersedes (`smelt.corpus.supersede`)."""
    num_perm = config.num_bands * config.rows_per_band
    sig_parts, count_parts = [], []
    for start in range(0, len(texts), BATCH_DOCS):
        sigs, counts = signatures(
            texts[start : start + BATCH_DOCS], config.ngram, num_perm, config.seed
        )
        sig_parts.append(sigs)
        count_parts.append(counts)
    sigs = np.concatenate(sig_parts) if sig_parts else np.zeros((0, num_perm), np.uint32)
    counts = np.concatenate(count_parts) if count_parts else np.zeros(0, np.int64)
    columns = {
        "id": pa.array(ids, pa.string()),
        "length": pa.array([len(text) for text in texts], pa.int64()),
        "exact": pa.array(exact_keys(texts), pa.int64()),
        "shingles": pa.array(counts, pa.int32()),
        "sig": pa.FixedSizeBinaryArray.from_buffers(
            pa.binary(4 * num_perm),
            len(ids),
            [None, pa.py_buffer(sigs.astype("<u4").tobytes())],
        ),
    }
    if sources is not None:
        columns["source"] = pa.array(sources, pa.string())
    return pa.table(columns), sigs


def sign_partition(partition_uri: str, layout: DedupLayout, config: DedupConfig) -> dict[str, Any]:
    """Sign one stage-1 partition (columns id, text); skipped when its marker says done.

    The marker's fingerprint covers the partition file's size and the signature parameters,
    which later steps take as this partition's version.
    """
    name = partition_name(partition_uri)
    key = fingerprint(partition_uri, storage.size(partition_uri), signature_params(config))
    marker = Marker(layout.signatures_done(name), key)
    return run_once(marker, lambda: _sign(partition_uri, layout, name, config))


def _sign(
    partition_uri: str, layout: DedupLayout, name: str, config: DedupConfig
) -> dict[str, Any]:
    started = time.perf_counter()
    state = layout.partition(name)
    table = tables.read_table(partition_uri)
    ids = table.column("id").to_pylist()
    texts = [text or "" for text in table.column("text").to_pylist()]
    sources = table.column("source").to_pylist() if "source" in table.column_names else None
    del table
    sig_table, sigs = signature_table(ids, texts, config, sources)
    exact = sig_table.column("exact").to_numpy() if config.exact else None
    bands = band_rows(
        sigs,
        sig_table.column("shingles").to_numpy(),
        exact,
        config.num_bands,
        config.rows_per_band,
        config.near,
    )
    tables.write_table(state.signatures_uri, sig_table, SIGNATURE_ROW_GROUP)
    tables.write_table(state.bands_uri, bands, BAND_ROW_GROUP)
    log.info("signed %s: %d docs, %d band rows", name, len(ids), bands.num_rows)
    return {
        "partition": name,
        "docs": len(ids),
        "band_rows": bands.num_rows,
        "bytes": sum(len(text.encode("utf-8")) for text in texts),
        "seconds": round(time.perf_counter() - started, 3),
    }
