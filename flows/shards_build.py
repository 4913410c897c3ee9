"""The `shards-build` flow: a corpus and a tokenizer -> uint32 train/val shards + manifest.

    plan -> tokenize (a task run per partition) -> pack (a task run per shard) -> manifest

The steps are `smelt.prep.shards.run_build`, the same code a plain `build_shards` runs, here on
a `PrefectExecutor`. A flow's task runner is fixed when it starts, so for `runner="dask"` the
build runs as a subflow on a `DaskTaskRunner` (as `corpus-build` does); `process` and `thread`
run it in this flow, whose task runs wait on a warm process pool or do the work themselves.
"""

from __future__ import annotations

from typing import Any, Literal

from prefect import get_run_logger
from prefect.artifacts import create_table_artifact

from smelt.flows.flow import flow
from smelt.parallel import check_workers
from smelt.prep.shards import (
    DEFAULT_SHARD_TOKENS,
    DEFAULT_VAL_FRACTION,
    PRELOAD,
    BuildPlan,
    plan_build,
)
from smelt.prep.shards import run_build as run_shards_build
from smelt.tasks.executor import PrefectExecutor, dask_task_runner, executor_for


@flow(name="shards-build-stages")
def shards_build_stages(plan: BuildPlan, workers: int, force: bool = False) -> dict[str, Any]:
    """The build as a subflow whose task runner is a `DaskTaskRunner`."""
    return run_shards_build(plan, PrefectExecutor(workers, remote=True), force).summary()


@flow(name="shards-build")
def shards_build(
    corpus: str,
    tokenizer: str,
    output: str,
    val_fraction: float = DEFAULT_VAL_FRACTION,
    shard_tokens: int = DEFAULT_SHARD_TOKENS,
    runner: Literal["process", "thread", "dask"] = "process",
    workers: int | None = None,
    dask_address: str | None = None,
    force: bool = False,
) -> dict[str, Any]:
    """Tokenize `corpus` with `tokenizer` into shards at `output`; returns a summary.

    Shards at `output` already built from the same corpus, tokenizer and settings are kept
    (`skipped` in the summary) unless `force`; an interrupted build resumes.
    """
    workers = check_workers(workers)
    plan = plan_build(corpus, tokenizer, output, val_fraction, shard_tokens)
    get_run_logger().info("%d corpus partitions -> %s", len(plan.partitions), plan.output_uri)
    if runner == "dask":
        task_runner = dask_task_runner(workers, dask_address)
        summary = shards_build_stages.with_options(task_runner=task_runner)(plan, workers, force)
    else:
        with executor_for(runner, workers, PRELOAD) as executor:
            summary = run_shards_build(plan, executor, force).summary()
    create_table_artifact(
        key="shards-build",
        table=[{"count": k, "value": v} for k, v in summary.items()],
        description=f"Shards of {corpus} at {output}",
    )
    return summary
