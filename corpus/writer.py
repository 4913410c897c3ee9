"""Corpus partitions as tables: documents and quarantined items (through `corpus.tables`).

Rows are sorted by (id, source) before writing so that the same input gives byte-identical
partitions whatever order the stages produced them in (reruns and resumed runs compare equal).
Besides `id`, `text`, `source` and `url` (ARCHITECTURE.md, "On-disk formats"), a document row
holds its language label (`language`, `language_score`: null when language identification is
off), from `Document.metadata`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator

import pyarrow as pa

from smelt.corpus import tables
from smelt.corpus.document import Document, Quarantined

log = logging.getLogger(__name__)

DOCUMENT_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("text", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("url", pa.string(), nullable=True),
        pa.field("language", pa.string(), nullable=True),
        pa.field("language_score", pa.float32(), nullable=True),
    ]
)
LABELS = ("language", "language_score")  # metadata keys stored as columns

QUARANTINE_SCHEMA = pa.schema(
    [
        pa.field("source", pa.string(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("id", pa.string(), nullable=True),
        pa.field("stage", pa.string(), nullable=False),
    ]
)

ROW_GROUP_ROWS = 2048  # small row groups keep readers streaming with bounded memory


def write_documents(docs: Iterable[Document], uri: str) -> int:
    """Write documents (sorted by id, source) to one Parquet file at `uri`; returns the count."""
    rows = sorted(docs, key=lambda d: (d.id, d.source))
    table = pa.table(
        {
            "id": [d.id for d in rows],
            "text": [d.text for d in rows],
            "source": [d.source for d in rows],
            "url": [d.url for d in rows],
            **{label: [d.metadata.get(label) for d in rows] for label in LABELS},
        },
        schema=DOCUMENT_SCHEMA,
    )
    tables.write_table(uri, table, ROW_GROUP_ROWS)
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
    tables.write_table(uri, table, ROW_GROUP_ROWS)
    log.info("quarantined %d item(s) -> %s", len(rows), uri)
    return len(rows)


def read_documents(uri: str) -> Iterator[Document]:
    """Stream the documents of one partition file, batch by batch (labels into metadata)."""
    columns = ["id", "text", "source", "url", *LABELS]
    for doc_id, text, source, url, *labels in tables.iter_rows(uri, columns):
        metadata = {k: v for k, v in zip(LABELS, labels, strict=True) if v is not None}
        yield Document(id=doc_id, text=text, source=source, url=url, metadata=metadata)
