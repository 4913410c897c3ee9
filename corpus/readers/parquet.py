"""Parquet inputs: one document per row, streamed one row group (batch) at a time."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import IO

import pyarrow.parquet as pq

from smelt.corpus.config import ReaderConfig
from smelt.corpus.document import Document, Quarantined
from smelt.corpus.readers.jsonl import record_to_document

_BATCH_ROWS = 4096


def read_parquet(
    file_uri: str, stream: IO[bytes], config: ReaderConfig
) -> Iterator[Document | Quarantined]:
    """Rows with the configured text/id/url columns; a file without the text column is quarantined."""
    if not stream.seekable():  # a compressed .parquet.gz: Parquet needs random access
        stream = io.BytesIO(stream.read())
    parquet = pq.ParquetFile(stream)
    names = set(parquet.schema_arrow.names)
    if config.text_field not in names:
        yield Quarantined(
            file_uri,
            f"parquet file has no '{config.text_field}' column "
            f"(columns: {', '.join(sorted(names)) or 'none'})",
        )
        return
    wanted = [c for c in (config.text_field, config.id_field, config.url_field) if c in names]
    row = 0
    for batch in parquet.iter_batches(batch_size=_BATCH_ROWS, columns=list(dict.fromkeys(wanted))):
        for record in batch.to_pylist():
            yield record_to_document(
                record, config, source=file_uri, label=f"row {row}", position=row, fmt="parquet"
            )
            row += 1
