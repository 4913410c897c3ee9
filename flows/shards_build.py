"""The `shards-build` flow: a corpus and a tokenizer -> uint32 train/val shards + manifest.

    plan -> tokenize (a task per partition, on the chosen task runner) -> pack -> manifest

A flow's task runner is fixed when it starts, so the outer flow picks it from its parameters
and runs the stages as a subflow on it (as `corpus-build` does).
"""

from __future__ import annotations

from typing import Any, Literal

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact

from smelt.tasks.runners import make_task_runner
from smelt.tasks.shards import pack_shards, plan_shards, tokenize_partition, write_manifest
from smelt.training.shard_writer import DEFAULT_SHARD_TOKENS, BuildPlan


@flow(name="shards-build-stages")
def shards_build_stages(plan: BuildPlan) -> dict[str, Any]:
    """Tokenize every partition in parallel, then pack and publish the manifest."""
    futures = [tokenize_partition.submit(plan, i) for i in range(len(plan.partitions))]
    parts = [f.result() for f in futures]
    shards = pack_shards(plan, parts)
    return write_manifest(plan, parts, shards)


@flow(name="shards-build")
def shards_build(
    corpus: str,
    tokenizer: str,
    output: str,
    val_fraction: float = 0.01,
    shard_tokens: int = DEFAULT_SHARD_TOKENS,
    runner: Literal["process", "thread", "dask"] = "process",
    workers: int | None = None,
    dask_address: str | None = None,
) -> dict[str, Any]:
    """Tokenize `corpus` with `tokenizer` into shards at `output`; returns a summary."""
    plan = plan_shards(corpus, tokenizer, output, val_fraction, shard_tokens)
    get_run_logger().info("%d corpus partitions -> %s", len(plan.partitions), plan.output_uri)
    task_runner = make_task_runner(runner, workers, dask_address)
    summary = shards_build_stages.with_options(task_runner=task_runner)(plan)
    create_table_artifact(
        key="shards-build",
        table=[{"count": k, "value": v} for k, v in summary.items()],
        description=f"Shards of {corpus} at {output}",
    )
    return summary
