"""Stage 3 of a corpus build: drop duplicates, redact PII, publish the partition.

Reads `_work/extracted/part-NNNNN.parquet`, removes the ids of the partition's removal list
(written by the dedup stage: columns `id`, `kind` in {"exact", "near"}), runs PII redaction when
enabled (a document whose redaction fails is quarantined, never written unredacted), and writes
`data/part-NNNNN.parquet`, `quarantine/pii-NNNNN.parquet` and the partition's counts, with the
`.done` marker last.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator
from typing import Any

from smelt.corpus.build import read_marker, write_partition_stats
from smelt.corpus.config import CorpusConfig
from smelt.corpus.document import Document, Quarantined
from smelt.corpus.layout import CorpusLayout
from smelt.corpus.stats import CorpusStats
from smelt.corpus.writer import read_documents, read_table, write_documents, write_quarantine
from smelt.errors import IntegrityError
from smelt.storage import exists, write_text

log = logging.getLogger(__name__)

DUPLICATE_KINDS = ("exact", "near")


def load_removals(removal_uri: str | None) -> dict[str, str]:
    """id -> kind of duplicate, from a removal list (empty when there is none)."""
    if not removal_uri:
        return {}
    table = read_table(removal_uri, columns=["id", "kind"])
    removals = dict(
        zip(table.column("id").to_pylist(), table.column("kind").to_pylist(), strict=True)
    )
    unknown = set(removals.values()) - set(DUPLICATE_KINDS)
    if unknown:
        raise IntegrityError(
            f"removal list {removal_uri} has unknown kind(s) {sorted(unknown)}; "
            f"expected {DUPLICATE_KINDS}"
        )
    return removals


def drop_duplicates(
    docs: Iterable[Document], removals: dict[str, str], stats: CorpusStats
) -> Iterator[Document]:
    """Yield the documents not on the removal list, counting the others by kind."""
    for doc in docs:
        kind = removals.get(doc.id)
        if kind is None:
            yield doc
        else:
            stats.duplicates[kind] += 1


def redact(
    docs: Iterable[Document], config: CorpusConfig, stats: CorpusStats
) -> Iterator[Document | Quarantined]:
    """PII redaction when enabled, else the documents unchanged."""
    if not config.pii.enabled:
        return iter(docs)
    from smelt.corpus.pii import redact_documents

    return redact_documents(docs, config.pii, stats)


def finalize_partition(
    output_uri: str, index: int, removal_uri: str | None, config: CorpusConfig
) -> dict[str, Any]:
    """Publish partition `index`; returns its manifest (the saved one when already done)."""
    layout = CorpusLayout.at(output_uri)
    done_uri = layout.final_done(index)
    if exists(done_uri):
        return {**read_marker(done_uri), "skipped": True}
    stats = CorpusStats()
    extracted = list(read_documents(layout.extracted(index)))
    unique = drop_duplicates(extracted, load_removals(removal_uri), stats)
    kept: list[Document] = []
    quarantined: list[Quarantined] = []
    for item in redact(unique, config, stats):
        if isinstance(item, Quarantined):
            quarantined.append(Quarantined(item.source, item.reason, item.id, "pii"))
        else:
            kept.append(item)
    stats.kept = len(kept)
    stats.quarantined = len(quarantined)
    stats.kept_chars = sum(len(doc.text) for doc in kept)
    if len(extracted) != stats.kept + stats.quarantined + sum(stats.duplicates.values()):
        raise IntegrityError(
            f"partition {index}: {len(extracted)} extracted documents but {stats.kept} kept + "
            f"{stats.quarantined} quarantined + {sum(stats.duplicates.values())} duplicates"
        )
    write_documents(kept, layout.data(index))
    write_quarantine(quarantined, layout.pii_quarantine(index))
    write_partition_stats(layout.final_stats(index), stats, len(kept))
    manifest = {
        "index": index,
        "stage": "finalize",
        "data_uri": layout.data(index),
        "kept": stats.kept,
        "quarantined": stats.quarantined,
        "duplicates": dict(stats.duplicates),
        "pii": dict(stats.pii),
    }
    write_text(done_uri, json.dumps(manifest))
    log.info(
        "finalized partition %d: %d kept, %d duplicates, %d quarantined",
        index,
        stats.kept,
        sum(stats.duplicates.values()),
        stats.quarantined,
    )
    return {**manifest, "skipped": False}
