"""Prefect tasks of the corpus build: thin wrappers over corpus/ that pass URIs and manifests.

Each partition task is idempotent (its `.done` marker makes a rerun return the saved manifest),
so Prefect's retries and a rerun of the whole flow are both safe.
"""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NONE

from smelt.corpus import build, finalize
from smelt.corpus.config import CorpusConfig
from smelt.corpus.partition import load_plan


@task(
    name="extract-partition",
    task_run_name="extract-{index}",
    retries=2,
    retry_delay_seconds=5,
    cache_policy=NONE,
)
def extract_partition(
    output_uri: str, index: int, files: list[str], config: CorpusConfig
) -> dict[str, Any]:
    """Stage 1: read, normalize and filter one partition's files."""
    return build.extract_partition(output_uri, index, files, config)


@task(
    name="finalize-partition",
    task_run_name="finalize-{index}",
    retries=2,
    retry_delay_seconds=5,
    cache_policy=NONE,
)
def finalize_partition(
    output_uri: str, index: int, removal_uri: str | None, config: CorpusConfig
) -> dict[str, Any]:
    """Stage 3: drop duplicates, redact PII, publish the partition."""
    return finalize.finalize_partition(output_uri, index, removal_uri, config)


@task(name="write-corpus-stats", retries=2, retry_delay_seconds=5, cache_policy=NONE)
def write_corpus_stats(
    output_uri: str, config: CorpusConfig, dedup_against: list[str]
) -> dict[str, Any]:
    """Merge the partitions' counts into stats.json and publish them as a table artifact."""
    summary = build.write_corpus_stats(output_uri, load_plan(output_uri), config, dedup_against)
    create_table_artifact(
        key="corpus-stats",
        table=stats_rows(summary),
        description=f"Corpus build counts for {output_uri}",
    )
    return summary


def stats_rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """stats.json flattened into (count, value) rows, e.g. `filtered.gopher_quality`."""
    rows = []
    for key, value in summary.items():
        if isinstance(value, dict):
            rows.extend({"count": f"{key}.{sub}", "value": n} for sub, n in value.items())
        else:
            rows.append({"count": key, "value": value})
    return rows
