"""The corpus build's own stages: extract each partition, then merge the partitions' counts.

Stage 1 (`extract_partition`) runs the readers, normalization and quality filters
(`corpus.pipeline.process_file`) over one partition's files and writes the survivors to
`_work/extracted/`. Stage 2 (dedup) and stage 3 (`corpus.finalize`) follow; `write_corpus_stats`
closes the build by writing `config.json` and then `stats.json`, the mark of a finished corpus.

Every partition's outputs are written atomically and its `.done` marker last, holding the
partition's manifest: a rerun returns that manifest instead of redoing the work, and a
partition killed mid-way has no marker and is redone whole, so no document is ever written twice.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from smelt.corpus.config import CorpusConfig
from smelt.corpus.document import Quarantined
from smelt.corpus.layout import CorpusLayout
from smelt.corpus.partition import Plan
from smelt.corpus.stats import CorpusStats
from smelt.corpus.writer import write_documents, write_quarantine
from smelt.errors import IntegrityError
from smelt.storage import exists, read_text, write_text

log = logging.getLogger(__name__)


def read_marker(done_uri: str) -> dict[str, Any]:
    """The manifest a `.done` marker holds."""
    return json.loads(read_text(done_uri))


def write_partition_stats(stats_uri: str, stats: CorpusStats, documents: int) -> None:
    """A partition's counts, plus how many documents it passes on to the next stage."""
    write_text(stats_uri, json.dumps({**stats.to_dict(), "documents": documents}, indent=1))


def extract_partition(
    output_uri: str, index: int, files: list[str], config: CorpusConfig
) -> dict[str, Any]:
    """Read, normalize and filter one partition's files into `_work/extracted/part-NNNNN`.

    Returns the partition's manifest (URIs and counts); a partition already done is skipped.
    """
    from smelt.corpus.pipeline import process_file

    layout = CorpusLayout.at(output_uri)
    done_uri = layout.extracted_done(index)
    if exists(done_uri):
        return {**read_marker(done_uri), "skipped": True}
    stats = CorpusStats()
    docs, quarantined = [], []
    for file_uri in files:
        for item in process_file(file_uri, config, stats):
            (quarantined if isinstance(item, Quarantined) else docs).append(item)
    stats.kept = 0  # nothing is kept before dedup and PII: stage 3 counts the kept documents
    if stats.input_docs != len(docs) + stats.quarantined + sum(stats.filtered.values()):
        raise IntegrityError(
            f"partition {index}: {stats.input_docs} input documents but {len(docs)} extracted + "
            f"{stats.quarantined} quarantined + {sum(stats.filtered.values())} filtered"
        )
    write_documents(docs, layout.extracted(index))
    write_quarantine(quarantined, layout.extract_quarantine(index))
    write_partition_stats(layout.extracted_stats(index), stats, len(docs))
    manifest = {
        "index": index,
        "stage": "extract",
        "extracted_uri": layout.extracted(index),
        "documents": len(docs),
        "input_docs": stats.input_docs,
        "quarantined": stats.quarantined,
        "filtered": sum(stats.filtered.values()),
        "input_bytes": stats.input_bytes,
    }
    write_text(done_uri, json.dumps(manifest))
    log.info("extracted partition %d: %d of %d documents", index, len(docs), stats.input_docs)
    return {**manifest, "skipped": False}


def merge_stats(output_uri: str, partition_count: int) -> CorpusStats:
    """Sum the extract and finalize counts of every partition; all must be done."""
    layout = CorpusLayout.at(output_uri)
    total = CorpusStats()
    for index in range(partition_count):
        if not exists(layout.final_done(index)):
            raise IntegrityError(
                f"partition {index} of {layout.root} is not finished "
                f"({layout.final_done(index)} missing); rerun the build"
            )
        for stats_uri in (layout.extracted_stats(index), layout.final_stats(index)):
            total.merge(CorpusStats.from_dict(json.loads(read_text(stats_uri))))
    total.check_identity()
    return total


def build_record(plan: Plan, config: CorpusConfig, dedup_against: list[str]) -> dict[str, Any]:
    """What `config.json` holds: enough to tell whether a corpus came from these inputs/config."""
    return {
        "format": "smelt-corpus-v1",
        "fingerprint": plan.fingerprint,
        "inputs": plan.inputs,
        "input_files": plan.file_count,
        "input_bytes": plan.total_bytes,
        "partitions": len(plan.partitions),
        "dedup_against": dedup_against,
        "config": config.to_dict(),
    }


def write_corpus_stats(
    output_uri: str, plan: Plan, config: CorpusConfig, dedup_against: list[str]
) -> dict[str, Any]:
    """Write `config.json`, then `stats.json` (last: its presence means the corpus is finished)."""
    layout = CorpusLayout.at(output_uri)
    stats = merge_stats(output_uri, len(plan.partitions))
    record = build_record(plan, config, dedup_against)
    write_text(layout.config, json.dumps(record, indent=1, default=str))
    summary = {**stats.to_dict(), "partitions": len(plan.partitions)}
    write_text(layout.stats, json.dumps(summary, indent=1))
    log.info("corpus %s: %d of %d documents kept", layout.root, stats.kept, stats.input_docs)
    return summary


def corpus_fingerprint(output_uri: str) -> str | None:
    """The inputs+config fingerprint of a finished corpus, or None when it is unfinished."""
    layout = CorpusLayout.at(output_uri)
    if not exists(layout.stats) or not exists(layout.config):
        return None
    return json.loads(read_text(layout.config)).get("fingerprint")
