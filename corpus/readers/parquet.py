"""Parquet inputs: one document per row, streamed one record batch at a time.

Memory stays bounded whatever a file holds. Before a row group is read, its metadata says how
many bytes its text, id and url columns decompress to: a row group beyond `ROW_GROUP_BUDGET`
documents' worth is not materialised at all, and its rows are quarantined with the reason (a
31 KB file can hold a 1 GB string). Within a batch, cell lengths are read from Arrow's offsets
before any Python string is made, and a row with a cell larger than `text_max_bytes` is
quarantined. A compressed `.parquet.gz`/`.zst` is decompressed to a temporary file (Parquet
needs random access), never into memory.

`start`/`end` select a run of row groups (a huge file is split across partitions); a row's
position, and so its derived id, is its index in the whole file either way.
"""

from __future__ import annotations

import tempfile
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
SPOOL_MAX_BYTES = 8 * 1024**3  # a .parquet.gz/.zst is decompressed to a temporary file first


def read_parquet(
    file_uri: str,
    stream: IO[bytes],
    config: ReaderConfig,
    start: int = 0,
    end: int | None = None,
) -> Iterator[Document | Quarantined]:
    """Rows with the configured text/id/url columns; a file without the text column is
    quarantined."""
    if stream.seekable():
        yield from _read_rows(file_uri, stream, config, start, end)
        return
    spooled = _spool(stream)  # a compressed .parquet.gz: Parquet needs random access
    if spooled is None:
        yield Quarantined(
            file_uri,
            f"compressed parquet file decompresses to more than {SPOOL_MAX_BYTES:,} bytes; "
            "store Parquet without an outer .gz/.zst (it compresses its own pages)",
        )
        return
    with spooled:
        yield from _read_rows(file_uri, spooled, config, start, end)


def _read_rows(
    file_uri: str, stream: IO[bytes], config: ReaderConfig, start: int, end: int | None
) -> Iterator[Document | Quarantined]:
    with pq.ParquetFile(stream) as schema_only:
        names = schema_only.schema_arrow.names
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
    stream.seek(0)  # again, keeping dictionary-encoded columns encoded (see _group_documents)
    with pq.ParquetFile(stream, read_dictionary=wanted) as parquet:
        yield from _read_groups(file_uri, parquet, wanted, config, start, end)


def _read_groups(
    file_uri: str,
    parquet: pq.ParquetFile,
    wanted: list[str],
    config: ReaderConfig,
    start: int,
    end: int | None,
) -> Iterator[Document | Quarantined]:
    """Row groups `start` to `end` of an open file, each judged by its size before it is read
    (the footer's sizes first, then the dictionary-expanded ones)."""
    meta = parquet.metadata
    positions = [i for i in range(meta.num_columns) if _top_column(meta, i) in wanted]
    row = sum(meta.row_group(g).num_rows for g in range(start))
    stop = meta.num_row_groups if end is None else min(end, meta.num_row_groups)
    budget = ROW_GROUP_BUDGET * config.text_max_bytes
    for group in range(start, stop):
        rows = meta.row_group(group).num_rows
        stored = sum(meta.row_group(group).column(i).total_uncompressed_size for i in positions)
        if stored > budget:  # known from the footer: not even read
            yield from _oversized_group(file_uri, group, row, rows, stored, config)
        else:
            table = parquet.read_row_group(group, wanted)
            yield from _group_documents(file_uri, group, table, row, config)
        row += rows


def _group_documents(
    file_uri: str, group: int, table: pa.Table, first_row: int, config: ReaderConfig
) -> Iterator[Document | Quarantined]:
    """The rows of one row group, read with its dictionary-encoded columns still encoded: a
    tiny dictionary can stand for the same huge string in every row (a 469-byte file can
    expand to 200 MB), so the group's expanded size is computed from the dictionary's lengths
    before any row becomes a Python string."""
    batches = table.to_batches(max_chunksize=_BATCH_ROWS)
    expanded = sum(
        sum(filter(None, _byte_lengths(b.column(i)))) for b in batches for i in range(b.num_columns)
    )
    if expanded > ROW_GROUP_BUDGET * config.text_max_bytes:
        yield from _oversized_group(
            file_uri, group, first_row, table.num_rows, expanded, config, "expand to"
        )
        return
    row = first_row
    for batch in batches:
        yield from _batch_documents(file_uri, batch, row, config)
        row += batch.num_rows


def _top_column(meta: pq.FileMetaData, index: int) -> str:
    """The top-level column a leaf column belongs to (`a.list.element` -> `a`)."""
    return meta.schema.column(index).path.split(".")[0]


def _spool(stream: IO[bytes]) -> IO[bytes] | None:
    """The decompressed stream in a seekable temporary file (memory up to 64 MiB, then disk),
    or None when it exceeds `SPOOL_MAX_BYTES`."""
    spooled = tempfile.SpooledTemporaryFile(max_size=64 * 1024 * 1024)  # noqa: SIM115 - returned
    copied = 0
    while chunk := stream.read(1 << 20):
        copied += len(chunk)
        if copied > SPOOL_MAX_BYTES:
            spooled.close()
            return None
        spooled.write(chunk)
    spooled.seek(0)
    return spooled


def _batch_documents(
    file_uri: str, batch: pa.RecordBatch, first_row: int, config: ReaderConfig
) -> Iterator[Document | Quarantined]:
    lengths = _byte_lengths(batch.column(config.text_field))
    too_long = {i for i, n in enumerate(lengths) if n is not None and n > config.text_max_bytes}
    for name in batch.schema.names:  # an id or url cell may be huge too
        if name != config.text_field:
            cells = _byte_lengths(batch.column(name))
            too_long |= {i for i, n in enumerate(cells) if n and n > config.text_max_bytes}
            lengths = [max(a or 0, b or 0) for a, b in zip(lengths, cells, strict=True)]
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
                f"row {position}: a cell of {lengths[offset]:,} bytes is larger than the limit of "
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
    if pa.types.is_dictionary(column.type):
        values = _byte_lengths(column.dictionary)
        if not values or values[0] is None:
            return [None] * len(column)
        return pc.take(pa.array(values, pa.int64()), column.indices).to_pylist()
    if (
        pa.types.is_string(column.type)
        or pa.types.is_large_string(column.type)
        or (pa.types.is_binary(column.type) or pa.types.is_large_binary(column.type))
    ):
        return pc.binary_length(column).to_pylist()
    return [None] * len(column)  # not text: record_to_document names the wrong type


def _oversized_group(
    file_uri: str,
    group: int,
    first_row: int,
    rows: int,
    text_bytes: int,
    config: ReaderConfig,
    verb: str = "hold",
) -> Iterator[Quarantined]:
    reason = (
        f"row group {group} (rows {first_row}-{first_row + rows - 1}): its text, id and url "
        f"columns {verb} "
        f"{text_bytes:,} bytes uncompressed, more than {ROW_GROUP_BUDGET} documents of the "
        f"{config.text_max_bytes:,}-byte limit; not read (rewrite the file with smaller row "
        "groups or raise readers.text_max_bytes)"
    )
    for _ in range(rows):
        yield Quarantined(file_uri, reason)
