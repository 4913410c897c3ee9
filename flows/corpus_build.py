"""The `corpus-build` flow: raw files -> a clean, deduplicated, PII-redacted Parquet corpus.

The flow resolves its parameters once (`{date}`, dedup globs, config) into a
`corpus.build.BuildRequest` and runs `corpus.build.build_corpus` with a Prefect executor: every
partition of every stage (extract, dedup signatures and key ranges, finalize) is a task run,
while the work itself runs on a warm process pool (runner `process`), in threads (`thread`) or
on a Dask cluster (`dask`, in a subflow whose task runner is Dask's). Partitions already done
are skipped, so a rerun after a crash resumes. The counts become a table artifact.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from prefect import get_run_logger
from pydantic import BaseModel, Field

from smelt.corpus.build import BuildRequest, build_corpus, preload_modules
from smelt.corpus.config import resolve_config
from smelt.corpus.targets import expand_dedup_against, expand_output
from smelt.flows.flow import flow
from smelt.tasks.corpus import publish_stats
from smelt.tasks.executor import PrefectExecutor, dask_task_runner, executor_for


class CorpusBuildParams(BaseModel):
    """What a corpus build is told: the form the Prefect UI shows for a run."""

    inputs: list[str] = Field(description="input files, directories or s3:// prefixes")
    output: str = Field(
        description="corpus output URI (local path or s3://bucket/prefix); `{date}` becomes the "
        "build's UTC date, e.g. s3://lake/corpus/nightly/{date}"
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
    only_new: bool = Field(
        False,
        description="read only input objects that no dedup_against corpus consumed in this "
        "version (new or changed); a changed object's old documents are superseded",
    )
    runner: Literal["process", "thread", "dask"] = "process"
    workers: int | None = Field(None, ge=1, description="parallel workers (default: every core)")
    dask_address: str | None = Field(None, description="scheduler of an existing Dask cluster")


def build_date(when: datetime | None = None) -> datetime:
    """The UTC moment a build's `{date}` comes from: `when`, else the flow run's scheduled
    start (also set for runs started from the command line), else now."""
    if when is None:
        from prefect.runtime import flow_run

        when = flow_run.scheduled_start_time or datetime.now(UTC)
    return when.astimezone(UTC)


def resolve_request(params: CorpusBuildParams, when: datetime | None = None) -> BuildRequest:
    """Parameters -> a concrete build: output and references expanded, config validated."""
    config = resolve_config(params.config_path, params.config_overrides)
    output = expand_output(params.output, build_date(when))
    return BuildRequest(
        inputs=params.inputs,
        output=output,
        config=config,
        dedup_against=expand_dedup_against(params.dedup_against, output),
        only_new=params.only_new,
    )


@flow(name="corpus-build")
def corpus_build(params: CorpusBuildParams) -> dict[str, Any]:
    """Build a corpus from `params.inputs` into `params.output`; returns stats.json's counts."""
    request = resolve_request(params)
    get_run_logger().info("building %s from %s", request.output, ", ".join(request.inputs))
    if params.runner == "dask":
        task_runner = dask_task_runner(params.workers, params.dask_address)
        summary = corpus_build_on_dask.with_options(task_runner=task_runner)(request)
    else:
        preload = preload_modules(request.config)
        with executor_for(params.runner, params.workers, preload) as executor:
            summary = build_corpus(request, executor)
    publish_stats(summary, request.output)
    return summary


@flow(name="corpus-build-on-dask")
def corpus_build_on_dask(request: BuildRequest) -> dict[str, Any]:
    """The same build with every task run on the Dask cluster of this flow's task runner."""
    return build_corpus(request, PrefectExecutor(1, remote=True))
