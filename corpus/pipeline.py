"""One input piece through ingest: read -> normalize -> quality filters, with exact accounting.

Every item a reader yields is one input document (a JSONL line, a Parquet row, an HTML file, a
WARC response record, an unreadable file) and counts once in `stats.input_docs` and once in
exactly one outcome here: `quarantined` (yielded, for the caller to write), `filtered[reason]`
(handed, labelled, to the caller's `FilteredSink` when it gives one), or yielded as a kept
`Document`, which the caller counts in `stats.kept` when it writes it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from smelt import storage
from smelt.corpus.config import CorpusConfig
from smelt.corpus.document import Document, Quarantined
from smelt.corpus.filtered import FilteredSink
from smelt.corpus.filters import QualityFilters
from smelt.corpus.normalize import normalize
from smelt.corpus.partition import Piece
from smelt.corpus.readers import read_documents
from smelt.corpus.stats import CorpusStats

log = logging.getLogger(__name__)


def process_file(
    file_uri: str,
    config: CorpusConfig,
    stats: CorpusStats,
    filtered: FilteredSink | None = None,
) -> Iterator[Document | Quarantined]:
    """Kept documents and quarantined items of one whole file; filtered ones are counted (and
    handed to `filtered`)."""
    stats.input_bytes += _size_or_zero(file_uri)
    yield from _process(read_documents(file_uri, config.readers), config, stats, filtered)


def process_piece(
    piece: Piece,
    config: CorpusConfig,
    stats: CorpusStats,
    filtered: FilteredSink | None = None,
) -> Iterator[Document | Quarantined]:
    """Kept documents and quarantined items of one planned piece (a file or a slice of one)."""
    stats.input_bytes += piece.bytes
    items = read_documents(piece.uri, config.readers, piece.start, piece.end)
    yield from _process(items, config, stats, filtered)


def _process(
    items: Iterator[Document | Quarantined],
    config: CorpusConfig,
    stats: CorpusStats,
    filtered: FilteredSink | None,
) -> Iterator[Document | Quarantined]:
    filters = QualityFilters(config.filters)
    for item in items:
        stats.input_docs += 1
        if isinstance(item, Quarantined):
            stats.quarantined += 1
            yield item
            continue
        outcome = _clean(item, config, filters)
        if isinstance(outcome, Quarantined):
            stats.quarantined += 1
            yield outcome
            continue
        doc, reason = outcome
        if reason is None:
            yield doc
            continue
        stats.filter(reason)
        if filtered is not None:
            filtered.add(doc, reason)


def _clean(
    doc: Document, config: CorpusConfig, filters: QualityFilters
) -> tuple[Document, str | None] | Quarantined:
    """(the labelled document, None when kept or the filter reason), or a Quarantined when a
    stage crashed on it."""
    stage = "normalize"
    try:
        doc = normalize(doc, config.normalize)
        stage = "filter"
        return filters.judge(doc)
    except Exception as exc:  # noqa: BLE001 - one odd document must not stop the build
        log.warning("%s failed on %s (%s): %s", stage, doc.id, doc.source, exc)
        return Quarantined(
            doc.source, f"{stage} failed: {type(exc).__name__}: {exc}", doc.id, stage
        )


def _size_or_zero(file_uri: str) -> int:
    try:
        return storage.size(file_uri)
    except Exception:  # noqa: BLE001 - a missing file is reported by the reader, not here
        return 0
