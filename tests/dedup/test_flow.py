"""The dedup stages on every executor: the same removal lists in one process, on a warm pool of
two worker processes, as Prefect task runs in threads, and on a Dask LocalCluster with two
worker processes (one orchestration, `corpus.dedup.plan.deduplicate`, for all of them)."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest
from prefect import flow

from smelt.corpus.config import DedupConfig
from smelt.corpus.dedup.plan import deduplicate
from smelt.parallel import LocalExecutor
from smelt.tasks.executor import PrefectExecutor, dask_task_runner, executor_for
from tests.dedup.test_dedup import corpus, partitions


@flow(name="dedup-test-threads")
def on_threads(partition_uris: list[str], work: str, out: str, config: DedupConfig) -> list:
    with executor_for("thread", 2) as executor:
        return deduplicate(partition_uris, work, out, config, [], executor)


@flow(name="dedup-test-dask")
def on_dask(partition_uris: list[str], work: str, out: str, config: DedupConfig) -> list:
    return deduplicate(partition_uris, work, out, config, [], PrefectExecutor(2, remote=True))


def removed(uris):
    return [sorted(pq.read_table(uri).to_pylist(), key=str) if uri else None for uri in uris]


@pytest.mark.slow
def test_same_result_on_every_executor(tmp_path, vocab, prefect_harness):
    rows, _, _ = corpus(vocab, clusters=40, uniques=40, dissimilar=10)
    parts = partitions(tmp_path, rows, count=4)
    config = DedupConfig(bucket_partitions=6)
    reference = removed(deduplicate(parts, str(tmp_path / "w0"), str(tmp_path / "o0"), config))
    with LocalExecutor(2) as pool:
        pooled = deduplicate(parts, str(tmp_path / "w1"), str(tmp_path / "o1"), config, [], pool)
    threads = on_threads(parts, str(tmp_path / "w2"), str(tmp_path / "o2"), config)
    dask = on_dask.with_options(task_runner=dask_task_runner(2))(
        parts, str(tmp_path / "w3"), str(tmp_path / "o3"), config
    )
    assert sum(len(r) for r in reference if r) >= 38
    assert removed(pooled) == reference
    assert removed(threads) == reference
    assert removed(dask) == reference
