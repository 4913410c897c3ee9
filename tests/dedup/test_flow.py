"""The dedup stages as Prefect tasks: same removal lists on threads, on a Dask LocalCluster with
two worker processes, and in one process without Prefect."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest
from prefect import flow
from prefect.task_runners import ThreadPoolTaskRunner

from smelt.corpus.config import DedupConfig
from smelt.corpus.dedup.plan import deduplicate
from smelt.flows.dedup import dedup_stage
from tests.dedup.test_dedup import corpus, partitions


@flow(name="dedup-test")
def dedup_flow(
    partition_uris: list[str], work_uri: str, output_uri: str, config: DedupConfig, runner_name: str
) -> list[str | None]:
    return dedup_stage(partition_uris, work_uri, output_uri, config, [], runner_name)


def removed(uris):
    return [sorted(pq.read_table(uri).to_pylist(), key=str) if uri else None for uri in uris]


@pytest.mark.slow
def test_same_result_on_threads_dask_and_in_process(tmp_path, vocab, prefect_harness):
    from prefect_dask import DaskTaskRunner

    rows, _, _ = corpus(vocab, clusters=40, uniques=40, dissimilar=10)
    parts = partitions(tmp_path, rows, count=4)
    config = DedupConfig(bucket_partitions=6)
    reference = removed(deduplicate(parts, str(tmp_path / "w0"), str(tmp_path / "o0"), config))
    threads = dedup_flow.with_options(task_runner=ThreadPoolTaskRunner(max_workers=2))(
        parts, str(tmp_path / "w1"), str(tmp_path / "o1"), config, "threads"
    )
    dask_runner = DaskTaskRunner(
        cluster_kwargs={
            "n_workers": 2,
            "threads_per_worker": 1,
            "processes": True,
            "dashboard_address": None,
        }
    )
    on_dask = dedup_flow.with_options(task_runner=dask_runner)(
        parts, str(tmp_path / "w2"), str(tmp_path / "o2"), config, "dask"
    )
    assert removed(threads) == reference
    assert removed(on_dask) == reference
    assert sum(len(r) for r in reference if r) >= 38
