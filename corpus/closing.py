"""Closing a corpus build: what was consumed, then `config.json`, then `stats.json` last.

`stats.json` is the mark of a finished corpus: it is written only once every partition's
done-marker is there, and its counts are their sum (`merge_stats` checks that every input
document is accounted for).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from smelt import storage
from smelt.corpus.config import CorpusConfig
from smelt.corpus.consumed import consumed_inputs, documents_per_source, write_consumed
from smelt.corpus.layout import CorpusLayout, corpus_fingerprint
from smelt.corpus.partition import Plan
from smelt.corpus.stats import CorpusStats
from smelt.corpus.supersede import Selection, leave_notices, write_supersedes
from smelt.errors import IntegrityError
from smelt.storage.stage import Marker

log = logging.getLogger(__name__)

CORPUS_FORMAT = "smelt-corpus-v1"


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
