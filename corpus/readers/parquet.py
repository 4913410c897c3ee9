"""Parquet inputs: one document per row, streamed one record batch at a time.

Memory stays bounded whatever a file holds. Before a row group is read, its metadata says how
many bytes its text column decompresses to: a row group beyond `ROW_GROUP_BUDGET` documents'
worth is not materialised at all, and its rows are quarantined with the reason (a 31 KB file
can hold a 1 GB string). Within a batch, text lengths are read from Arrow's offsets before any
Python string is made, and a cell larger than `text_max_bytes` is quarantined.

`start`/`end` select a run of row groups (a huge file is split across partitions); a row's
position, and so its derived id, is its index in the whole file either way.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import IO

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from smelt.corpus.config import ReaderConfig
from smelt.corpus.document import Document, Quarantined
from smelt.corpus.readers.jsonl import record_to_document

_BATCH_ROWS = 1024
ROW_GROUP_BUDGET = 4  # a row group may decompress to at most this many maximal documents


def read_parquet(
    file_uri: str,
    stream: IO[bytes],
    config: ReaderConfig,
    start: int = 0,
    end: int | None = None,
) -> Iterator[Document | Quarantined]:
    """Rows with the configured text/id/url columns; a file without the text column is
    quarantined."""
    if not stream.seekable():  # a compressed .parquet.gz: Parquet needs random access
        stream = io.BytesIO(stream.read())
    parquet = pq.ParquetFile(stream)
    names = parquet.schema_arrow.names
    if config.text_field not in names:
        yield Quarantined(
            file_uri,
            f"parquet file has no '{config.text_field}' column "
            f"(columns: {', '.join(sorted(names)) or 'none'})",
        )
        return
    wanted = list(
        dict.fromkeys(
            c for c in (config.text_field, config.id_field, config.url_field) if c in names
        )
    )
    meta = parquet.metadata
    text_column = names.index(config.text_field)
    row = sum(meta.row_group(g).num_rows for g in range(start))
    stop = meta.num_row_groups if end is None else min(end, meta.num_row_groups)
    for group in range(start, stop):
        rows = meta.row_group(group).num_rows
        text_bytes = meta.row_group(group).column(text_column).total_uncompressed_size
        if text_bytes > ROW_GROUP_BUDGET * config.text_max_bytes:
            yield from _oversized_group(file_uri, group, row, rows, text_bytes, config)
            row += rows
            continue
        for batch in parquet.iter_batches(
            batch_size=_BATCH_ROWS, row_groups=[group], columns=wanted
        ):
            yield from _batch_documents(file_uri, batch, row, config)
            row += batch.num_rows


def _batch_documents(
    file_uri: str, batch: pa.RecordBatch, first_row: int, config: ReaderConfig
) -> Iterator[Document | Quarantined]:
    texts = batch.column(config.text_field)
    lengths = _byte_lengths(texts)
    too_long = {i for i, n in enumerate(lengths) if n is not None and n > config.text_max_bytes}
    small = (
        batch
        if not too_long
        else batch.filter(pa.array([i not in too_long for i in range(batch.num_rows)]))
    )
    records = iter(small.to_pylist())
    for offset in range(batch.num_rows):
        position = first_row + offset
        if offset in too_long:
            yield Quarantined(
                file_uri,
                f"row {position}: text of {lengths[offset]:,} bytes is larger than the limit of "
                f"{config.text_max_bytes:,} bytes",
            )
            continue
        yield record_to_document(
            next(records),
            config,
            source=file_uri,
            label=f"row {position}",
            position=position,
            fmt="parquet",
        )


def _byte_lengths(column: pa.Array) -> list[int | None]:
    """Each cell's length in bytes, from Arrow's offsets (no Python strings are built)."""
    if (
        pa.types.is_string(column.type)
        or pa.types.is_large_string(column.type)
        or (pa.types.is_binary(column.type) or pa.types.is_large_binary(column.type))
    ):
        return pc.binary_length(column).to_pylist()
    return [None] * len(column)  # not text: record_to_document names the wrong type


def _oversized_group(
    file_uri: str, group: int, first_row: int, rows: int, text_bytes: int, config: ReaderConfig
) -> Iterator[Quarantined]:
    reason = (
        f"row group {group} (rows {first_row}-{first_row + rows - 1}): its text column holds "
        f"{text_bytes:,} bytes uncompressed, more than {ROW_GROUP_BUDGET} documents of the "
        f"{config.text_max_bytes:,}-byte limit; not read (rewrite the file with smaller row "
        "groups or raise readers.text_max_bytes)"
    )
    for _ in range(rows):
        yield Quarantined(file_uri, reason)
