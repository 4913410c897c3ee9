"""The `corpus-build` flow: raw files -> a clean, deduplicated, PII-redacted Parquet corpus.

    plan (reused on rerun) -> extract (a task per partition) -> dedup (subflow) ->
    finalize (a task per partition) -> stats.json

The flow plans, picks the task runner its parameters name, and runs the stages as a subflow on
that runner (a flow's runner is fixed when it starts, so the choice is made one level up).
Partitions already done are skipped, so a rerun after a crash resumes.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any, Literal

from prefect import flow, get_run_logger
from pydantic import BaseModel, Field

from smelt.corpus.config import CorpusConfig, config_from_dict, load_config
from smelt.corpus.layout import CorpusLayout
from smelt.corpus.partition import Plan, load_plan, plan_build
from smelt.corpus.targets import expand_dedup_against, expand_output
from smelt.flows.dedup import dedup_stage
from smelt.storage import exists
from smelt.tasks.corpus import extract_partition, finalize_partition, write_corpus_stats
from smelt.tasks.runners import make_task_runner

log = logging.getLogger(__name__)


class CorpusBuildParams(BaseModel):
    """What a corpus build is told: the form the Prefect UI shows for a run."""

    inputs: list[str] = Field(description="input files, directories or s3:// prefixes")
    output: str = Field(
        description="corpus output URI (local path or s3://bucket/prefix); `{date}` becomes the "
        "build's date, e.g. s3://lake/corpus/nightly/{date}"
    )
    config_path: str | None = Field(None, description="TOML/YAML file overriding defaults")
    config_overrides: dict[str, Any] = Field(
        default_factory=dict, description='inline overrides, e.g. {"pii": {"enabled": false}}'
    )
    dedup_against: list[str] = Field(
        default_factory=list,
        description="earlier corpora whose documents must not come back; a glob such as "
        "s3://lake/corpus/nightly/* means every finished corpus it matches",
    )
    runner: Literal["process", "thread", "dask"] = "process"
    workers: int | None = Field(None, description="parallel workers (default: every core)")
    dask_address: str | None = Field(None, description="scheduler of an existing Dask cluster")


def _deep_merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def resolve_config(params: CorpusBuildParams) -> CorpusConfig:
    """The config file (or defaults) with the inline overrides applied."""
    config = load_config(params.config_path)
    if not params.config_overrides:
        return config
    return config_from_dict(_deep_merge(config.to_dict(), params.config_overrides))


def resolve_targets(params: CorpusBuildParams, when: datetime | None = None) -> CorpusBuildParams:
    """Concrete output and dedup references (see corpus/targets.py); `when` defaults to the
    flow run's scheduled start, or now outside a flow run."""
    if when is None:
        from prefect.runtime import flow_run

        when = flow_run.scheduled_start_time or datetime.now(UTC)
    output = expand_output(params.output, when)
    dedup_against = expand_dedup_against(params.dedup_against, output)
    return params.model_copy(update={"output": output, "dedup_against": dedup_against})


def _removal_lists(
    plan: Plan, extracted: list[dict[str, Any]], config: CorpusConfig, params: CorpusBuildParams
) -> list[str | None]:
    """Stage 2: one removal list (or None) per partition."""
    nothing = [None] * len(plan.partitions)
    if not (config.dedup.exact or config.dedup.near):
        return nothing
    layout = CorpusLayout.at(params.output)
    return dedup_stage(
        [m["extracted_uri"] for m in extracted],
        layout.work_dir,
        layout.root,
        config.dedup,
        params.dedup_against,
        params.runner,
    )


@flow(name="corpus-build-stages")
def corpus_build_stages(params: CorpusBuildParams) -> dict[str, Any]:
    """Extract, dedup and finalize every partition of the saved plan, then write stats.json."""
    config = resolve_config(params)
    layout = CorpusLayout.at(params.output)
    plan = load_plan(layout.root)
    extract_futures = [
        extract_partition.submit(layout.root, p.index, list(p.files), config)
        for p in plan.partitions
    ]
    dedup_on = config.dedup.exact or config.dedup.near
    all_final = all(exists(layout.final_done(p.index)) for p in plan.partitions)
    if dedup_on and not all_final:
        extracted = [f.result() for f in extract_futures]
        removals = _removal_lists(plan, extracted, config, params)
        final_futures = [
            finalize_partition.submit(layout.root, i, removal, config)
            for i, removal in enumerate(removals)
        ]
    else:  # no global stage between: each partition finalizes as soon as it is extracted
        final_futures = [
            finalize_partition.submit(layout.root, i, None, config, wait_for=[f])
            for i, f in enumerate(extract_futures)
        ]
    for future in final_futures:
        future.result()
    return write_corpus_stats(layout.root, config, params.dedup_against)


@flow(name="corpus-build")
def corpus_build(params: CorpusBuildParams) -> dict[str, Any]:
    """Build a corpus from `params.inputs` into `params.output`; returns stats.json's counts."""
    params = resolve_targets(params)
    config = resolve_config(params)
    plan = plan_build(params.inputs, params.output, config, params.dedup_against)
    get_run_logger().info(
        "%d partitions over %d input files", len(plan.partitions), plan.file_count
    )
    runner = make_task_runner(params.runner, params.workers, params.dask_address)
    return corpus_build_stages.with_options(task_runner=runner)(params)
