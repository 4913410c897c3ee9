"""Parquet behind a URI (local or s3://): the one place smelt reads and writes its tables.

Corpus partitions, quarantine and filtered files, dedup signatures, band keys, pair lists and
removal lists are all Parquet. Writes are atomic (a local temporary file moved or uploaded into
place); reads stream by record batch, so memory is bounded by one batch, not one file.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from smelt import storage
from smelt.errors import InputError

BATCH_ROWS = 1024


def write_table(uri: str, table: pa.Table, row_group_size: int | None = None) -> None:
    """Atomically write `table` as zstd-compressed Parquet at `uri`."""
    with storage.atomic_local_path(uri, suffix=".parquet") as tmp:
        pq.write_table(table, tmp, compression="zstd", row_group_size=row_group_size)


def read_table(
    uri: str,
    columns: Sequence[str] | None = None,
    filters: list[tuple[str, str, Any]] | None = None,
) -> pa.Table:
    """A whole Parquet file (or the rows matching `filters`, row groups skipped by statistics).

    Without filters the file is read directly: `pq.read_table` goes through `pyarrow.dataset`,
    whose import costs a process about 0.3 s."""
    fs, path = storage.filesystem(uri)
    columns = list(columns) if columns else None
    if filters is None:
        with pq.ParquetFile(path, filesystem=fs) as parquet:
            return parquet.read(columns=columns)
    return pq.read_table(path, filesystem=fs, columns=columns, filters=filters)


def read_schema(uri: str) -> pa.Schema:
    """The Arrow schema of a Parquet file (its footer only)."""
    with storage.open_read(uri) as fh:
        return pq.ParquetFile(fh).schema_arrow


def iter_batches(
    uri: str, columns: Sequence[str], batch_rows: int = BATCH_ROWS
) -> Iterator[pa.RecordBatch]:
    """Record batches of `columns`, streamed; a clear error naming the file for a missing column."""
    with storage.open_read(uri) as fh:
        parquet = pq.ParquetFile(fh)
        missing = set(columns) - set(parquet.schema_arrow.names)
        if missing:
            raise InputError(f"{uri}: Parquet file lacks column(s) {sorted(missing)}")
        yield from parquet.iter_batches(batch_size=batch_rows, columns=list(columns))


def iter_rows(
    uri: str, columns: Sequence[str], batch_rows: int = BATCH_ROWS
) -> Iterator[tuple[Any, ...]]:
    """One tuple per row of `columns` (in that order), streamed batch by batch."""
    for batch in iter_batches(uri, columns, batch_rows):
        yield from zip(*(batch.column(i).to_pylist() for i in range(len(columns))), strict=True)


def read_cells(uri: str, column: str, rows: Iterable[int]) -> dict[int, Any]:
    """The values of `column` at the given row positions, reading only the row groups that
    hold them (a report's few rows out of a large partition)."""
    found: dict[int, Any] = {}
    with storage.open_read(uri) as fh:
        parquet = pq.ParquetFile(fh)
        starts = [0]
        for group in range(parquet.metadata.num_row_groups):
            starts.append(starts[-1] + parquet.metadata.row_group(group).num_rows)
        by_group: dict[int, list[int]] = {}
        for row in set(rows):
            if 0 <= row < starts[-1]:
                by_group.setdefault(bisect.bisect_right(starts, row) - 1, []).append(row)
        for group, group_rows in sorted(by_group.items()):
            values = parquet.read_row_group(group, columns=[column]).column(0).to_pylist()
            found.update((row, values[row - starts[group]]) for row in group_rows)
    return found
