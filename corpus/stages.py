"""The partition stages of a corpus build, run on workers: each reads or writes one partition.

- `process_partition` (dedup off): read -> normalize -> filter -> redact -> `data/`, one pass;
- `extract_partition` (dedup on, first): the survivors to `_work/extracted/`, for the dedup
  stages to see the whole corpus;
- `finalize_partition` (dedup on, last): drop the partition's duplicates, redact, `data/`.

Each runs under `smelt.storage.stage.run_once`: its done-marker, with the partition's counts,
is written after its Parquet files, so a rerun skips it when finished and redoes it whole when
interrupted. Every input document is counted as kept, filtered, quarantined or duplicate
(`read_partition` refuses a partition whose counts do not add up).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from smelt.corpus import tables
from smelt.corpus.config import CorpusConfig
from smelt.corpus.consumed import hash_local_inputs
from smelt.corpus.document import Document, Quarantined
from smelt.corpus.filtered import FilteredSink
from smelt.corpus.layout import CorpusLayout
from smelt.corpus.partition import Partition
from smelt.corpus.stats import CorpusStats
from smelt.corpus.writer import read_documents, write_documents, write_quarantine
from smelt.errors import IntegrityError
from smelt.storage.stage import Marker, fingerprint, run_once

log = logging.getLogger(__name__)

DUPLICATE_KINDS = ("exact", "near")


@dataclass(frozen=True)
class PartitionJob:
    """What a partition stage needs, small and picklable (it travels to worker processes)."""

    output: str
    plan_fingerprint: str
    partition: Partition
    config: CorpusConfig

    @property
    def index(self) -> int:
        return self.partition.index

    @property
    def layout(self) -> CorpusLayout:
        return CorpusLayout.at(self.output)

    def marker(self, uri: str) -> Marker:
        return Marker(uri, fingerprint(self.plan_fingerprint, self.index))


def extract_partition(job: PartitionJob) -> dict[str, Any]:
    """Stage 1 with dedup on: read, normalize and filter one partition into `_work/extracted/`."""
    layout = job.layout
    return run_once(job.marker(layout.extracted_done(job.index)), lambda: _extract(job, layout))


def _extract(job: PartitionJob, layout: CorpusLayout) -> dict[str, Any]:
    hashes = hash_local_inputs(job.partition)
    filtered = FilteredSink.for_output(job.config.output)
    stats, docs, quarantined = read_partition(job.partition, job.config, filtered)
    write_documents(docs, layout.extracted(job.index))
    write_quarantine(quarantined, layout.extract_quarantine(job.index))
    kept_aside = filtered.write(layout, job.index)
    log.info("extracted partition %d: %d of %d documents", job.index, len(docs), stats.input_docs)
    return {
        "index": job.index,
        "stage": "extract",
        "extracted_uri": layout.extracted(job.index),
        "documents": len(docs),
        "filtered_written": kept_aside,
        "stats": stats.to_dict(),
        "input_sha256": hashes,
    }


def process_partition(job: PartitionJob) -> dict[str, Any]:
    """Extract and finalize one partition in one pass (dedup off: no global stage between)."""
    layout = job.layout

    def work() -> dict[str, Any]:
        hashes = hash_local_inputs(job.partition)
        filtered = FilteredSink.for_output(job.config.output)
        stats, docs, quarantined = read_partition(job.partition, job.config, filtered)
        kept_aside = filtered.write(layout, job.index)
        return {
            **_publish(job, layout, docs, quarantined, stats, {}),
            "filtered_written": kept_aside,
            "input_sha256": hashes,
        }

    return run_once(job.marker(layout.final_done(job.index)), work)


def finalize_partition(job: PartitionJob, removal_uri: str | None) -> dict[str, Any]:
    """Stage 3 with dedup on: drop the partition's duplicates, redact PII, publish it."""
    layout = job.layout

    def work() -> dict[str, Any]:
        extracted = list(read_documents(layout.extracted(job.index)))
        return _publish(job, layout, extracted, [], CorpusStats(), load_removals(removal_uri))

    return run_once(job.marker(layout.final_done(job.index)), work)


def read_partition(
    partition: Partition, config: CorpusConfig, filtered: FilteredSink | None = None
) -> tuple[CorpusStats, list[Document], list[Quarantined]]:
    """Every piece of a partition through read -> normalize -> filter, with exact counts;
    filtered documents go to `filtered` when given."""
    from smelt.corpus.pipeline import process_piece

    stats = CorpusStats()
    docs: list[Document] = []
    quarantined: list[Quarantined] = []
    for piece in partition.pieces:
        for item in process_piece(piece, config, stats, filtered):
            (quarantined if isinstance(item, Quarantined) else docs).append(item)
    dropped = sum(stats.filtered.values())
    accounted = len(docs) + stats.quarantined + dropped
    if stats.input_docs != accounted:
        raise IntegrityError(
            f"partition {partition.index}: {stats.input_docs} input documents but {len(docs)} "
            f"kept + {stats.quarantined} quarantined + {dropped} filtered"
        )
    if filtered is not None and filtered.keep_all and len(filtered.kept) != dropped:
        raise IntegrityError(
            f"partition {partition.index}: {dropped} filtered but {len(filtered.kept)} kept aside"
        )
    return stats, docs, quarantined


def _publish(
    job: PartitionJob,
    layout: CorpusLayout,
    docs: list[Document],
    quarantined: list[Quarantined],
    stats: CorpusStats,
    removals: dict[int, str],
) -> dict[str, Any]:
    """Drop duplicates (by row), redact PII, write `data/` and the quarantine; the manifest."""
    unique = drop_duplicates(docs, removals, stats)
    kept: list[Document] = []
    failed: list[Quarantined] = []
    for item in redact(unique, job.config, stats):
        if isinstance(item, Quarantined):
            failed.append(Quarantined(item.source, item.reason, item.id, "pii"))
        else:
            kept.append(item)
    stats.kept = len(kept)
    stats.quarantined += len(failed)
    stats.kept_chars = sum(len(doc.text) for doc in kept)
    write_documents(kept, layout.data(job.index))
    write_quarantine(quarantined, layout.extract_quarantine(job.index))
    write_quarantine(failed, layout.pii_quarantine(job.index))
    log.info(
        "partition %d: %d kept, %d duplicates, %d quarantined",
        job.index,
        stats.kept,
        sum(stats.duplicates.values()),
        stats.quarantined,
    )
    return {
        "index": job.index,
        "stage": "finalize",
        "data_uri": layout.data(job.index),
        "kept": stats.kept,
        "stats": stats.to_dict(),
    }


def load_removals(removal_uri: str | None) -> dict[int, str]:
    """row -> kind of duplicate, from a removal list (empty when there is none)."""
    if not removal_uri:
        return {}
    table = tables.read_table(removal_uri, columns=["row", "kind"])
    removals = dict(
        zip(table.column("row").to_pylist(), table.column("kind").to_pylist(), strict=True)
    )
    unknown = set(removals.values()) - set(DUPLICATE_KINDS)
    if unknown:
        raise IntegrityError(
            f"removal list {removal_uri} has unknown kind(s) {sorted(unknown)}; "
            f"expected {DUPLICATE_KINDS}"
        )
    return removals


def drop_duplicates(
    docs: Iterable[Document], removals: dict[int, str], stats: CorpusStats
) -> Iterator[Document]:
    """The documents whose row is not on the removal list, counting the others by kind."""
    for row, doc in enumerate(docs):
        kind = removals.get(row)
        if kind is None:
            yield doc
        else:
            stats.duplicates[kind] += 1


def redact(
    docs: Iterable[Document], config: CorpusConfig, stats: CorpusStats
) -> Iterator[Document | Quarantined]:
    """PII redaction when enabled (presidio is imported only then), else the documents as is."""
    if not config.pii.enabled:
        return iter(docs)
    from smelt.corpus.pii import redact_documents

    return redact_documents(docs, config.pii, stats)
