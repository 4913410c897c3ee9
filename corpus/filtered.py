"""Filtered documents kept for inspection: every one on request, a few per reason always.

A count such as `c4:min_num_sentences 296` says nothing about what was dropped; the documents
do. The pipeline hands each filtered document with its reason to a `FilteredSink` (datatrove's
exclusion writer, in smelt's shape), which keeps

- every filtered document when `[output] keep_filtered = true` (`--keep-filtered`), written
  beside the data as `OUTPUT/filtered/part-NNNNN.parquet`: as many rows as stats.json's
  `filtered` counts, so nothing filtered is out of sight;
- in any case the first `samples_per_reason` of each reason in the partition, written as
  `OUTPUT/samples/filtered-NNNNN.parquet`: what the build's report, the Prefect artifact and
  `smelt corpus inspect` show when not everything was kept.

Both are written by the partition stage before its done-marker, so a resumed build writes
them exactly once. Rows hold the text as the filters saw it (normalized, before C4 removed any
line), its id, source, url, reason, and the language label when one was computed.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from smelt import storage
from smelt.corpus import tables
from smelt.corpus.config import OutputConfig
from smelt.corpus.document import Document
from smelt.corpus.layout import CorpusLayout

FILTERED_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("text", pa.string(), nullable=False),
        pa.field("url", pa.string(), nullable=True),
        pa.field("language", pa.string(), nullable=True),
        pa.field("language_score", pa.float32(), nullable=True),
    ]
)
EXCERPT_CHARS = 160


@dataclass
class FilteredSink:
    """Collects one partition's filtered documents: all of them, or the first few per reason."""

    keep_all: bool = False
    per_reason: int = 5
    kept: list[tuple[Document, str]] = field(default_factory=list)
    samples: list[tuple[Document, str]] = field(default_factory=list)
    _seen: Counter[str] = field(default_factory=Counter)

    @classmethod
    def for_output(cls, config: OutputConfig) -> FilteredSink:
        return cls(keep_all=config.keep_filtered, per_reason=config.samples_per_reason)

    def add(self, doc: Document, reason: str) -> None:
        if self.keep_all:
            self.kept.append((doc, reason))
        if self._seen[reason] < self.per_reason:
            self.samples.append((doc, reason))
        self._seen[reason] += 1

    def write(self, layout: CorpusLayout, index: int) -> dict[str, int]:
        """Write what was collected for partition `index`; the row counts."""
        written = {"filtered": 0, "samples": write_filtered(self.samples, layout.samples(index))}
        if self.keep_all:
            written["filtered"] = write_filtered(self.kept, layout.filtered(index))
        return written


def write_filtered(rows: list[tuple[Document, str]], uri: str) -> int:
    """Filtered documents with their reasons (sorted by id, source) at `uri`; none: no file."""
    if not rows:
        return 0
    rows = sorted(rows, key=lambda row: (row[0].id, row[0].source, row[1]))
    table = pa.table(
        {
            "id": [doc.id for doc, _ in rows],
            "source": [doc.source for doc, _ in rows],
            "reason": [reason for _, reason in rows],
            "text": [doc.text for doc, _ in rows],
            "url": [doc.url for doc, _ in rows],
            "language": [doc.metadata.get("language") for doc, _ in rows],
            "language_score": [doc.metadata.get("language_score") for doc, _ in rows],
        },
        schema=FILTERED_SCHEMA,
    )
    tables.write_table(uri, table)
    return len(rows)


# ---- reading them back: the report, the artifact, `smelt corpus inspect` ------------------------


def matches(reason: str, wanted: str) -> bool:
    """`c4:min_num_sentences` matches itself, `c4` and `c4:`; `language` matches `language:de`."""
    return reason == wanted or reason.startswith(wanted.rstrip(":") + ":")


def iter_filtered(
    output_uri: str, reason: str | None = None, everything: bool | None = None
) -> Iterator[dict[str, Any]]:
    """Rows of the kept filtered documents (all of them when the build kept all, else the
    samples), optionally only those whose reason matches `reason`."""
    layout = CorpusLayout.at(output_uri)
    if everything is None:
        everything = storage.exists(layout.filtered_dir)
    directory = layout.filtered_dir if everything else layout.samples_dir
    if not storage.exists(directory):
        return
    for uri in storage.list_files(directory, suffixes=[".parquet"]):
        for row in tables.read_table(uri).to_pylist():
            if reason is None or matches(row["reason"], reason):
                yield row


def excerpt(text: str, chars: int = EXCERPT_CHARS) -> str:
    """The start of a text on one line, cut at a word boundary, with an ellipsis when cut."""
    flat = " ".join(text.split())
    if len(flat) <= chars:
        return flat
    return flat[:chars].rsplit(" ", 1)[0] + " …"


def samples_by_reason(output_uri: str, per_reason: int = 3) -> dict[str, list[dict[str, Any]]]:
    """A few kept filtered documents per reason (in partition order), for reports."""
    found: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in iter_filtered(output_uri, everything=False):
        if len(found[row["reason"]]) < per_reason:
            found[row["reason"]].append(row)
    return dict(sorted(found.items()))
