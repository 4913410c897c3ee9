"""Parquet I/O for corpus partitions: documents and quarantined items, written atomically.

Rows are sorted by (id, source) before writing so that the same input gives byte-identical
partitions whatever order the stages produced them in (reruns and resumed runs compare equal).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from smelt.corpus.document import Document, Quarantined
from smelt.storage import atomic_local_path, open_read

log = logging.getLogger(__name__)

DOCUMENT_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("text", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("url", pa.string(), nullable=True),
    ]
)

QUARANTINE_SCHEMA = pa.schema(
    [
        pa.field("source", pa.string(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("id", pa.string(), nullable=True),
        pa.field("stage", pa.string(), nullable=False),
    ]
)

ROW_GROUP_ROWS = 2048  # small row groups keep readers streaming with bounded memory


def _write_table(table: pa.Table, uri: str) -> None:
    with atomic_local_path(uri, suffix=".parquet") as tmp:
        pq.write_table(table, tmp, compression="zstd", row_group_size=ROW_GROUP_ROWS)


def write_documents(docs: Iterable[Document], uri: str) -> int:
    """Write documents (sorted by id, source) to one Parquet file at `uri`; returns the count."""
    rows = sorted(docs, key=lambda d: (d.id, d.source))
    table = pa.table(
        {
            "id": [d.id for d in rows],
            "text": [d.text for d in rows],
            "source": [d.source for d in rows],
            "url": [d.url for d in rows],
        },
        schema=DOCUMENT_SCHEMA,
    )
    _write_table(table, uri)
    log.debug("wrote %d documents to %s", len(rows), uri)
    return len(rows)


def write_quarantine(items: Iterable[Quarantined], uri: str) -> int:
    """Write quarantined items (sorted) to `uri`; returns the count. Nothing is written for none."""
    rows = sorted(items, key=lambda q: (q.source, q.id or "", q.stage, q.reason))
    if not rows:
        return 0
    table = pa.table(
        {
            "source": [q.source for q in rows],
            "reason": [q.reason for q in rows],
            "id": [q.id for q in rows],
            "stage": [q.stage for q in rows],
        },
        schema=QUARANTINE_SCHEMA,
    )
    _write_table(table, uri)
    log.info("quarantined %d item(s) -> %s", len(rows), uri)
    return len(rows)


def read_documents(uri: str) -> Iterator[Document]:
    """Stream the documents of one partition file, row group by row group."""
    with open_read(uri) as fh:
        parquet = pq.ParquetFile(fh)
        columns = [c for c in ("id", "text", "source", "url") if c in parquet.schema_arrow.names]
        for batch in parquet.iter_batches(columns=columns):
            data = batch.to_pydict()
            urls = data.get("url") or [None] * batch.num_rows
            for doc_id, text, source, url in zip(
                data["id"], data["text"], data["source"], urls, strict=True
            ):
                yield Document(id=doc_id, text=text, source=source, url=url)


def read_ids(uri: str, column: str = "id") -> list[str]:
    """One string column of a Parquet file (e.g. the ids of a removal list)."""
    with open_read(uri) as fh:
        return pq.read_table(fh, columns=[column]).column(column).to_pylist()


def read_table(uri: str, columns: list[str] | None = None) -> pa.Table:
    """A whole (small) Parquet file as an Arrow table."""
    with open_read(uri) as fh:
        return pq.read_table(fh, columns=columns)
