"""Task runner selection: where a flow's tasks run (processes, threads or a Dask cluster).

`process` (the default) runs tasks in a pool of one process per core; tasks are importable,
top-level functions and pass URIs and small manifests, so they pickle cheaply. `thread` runs
them in threads of the flow's process (useful under a debugger). `dask` runs them on a Dask
cluster: a `LocalCluster` of `workers` single-threaded worker processes, or the existing
scheduler at `dask_address`.
"""

from __future__ import annotations

import os

from prefect.task_runners import ProcessPoolTaskRunner, TaskRunner, ThreadPoolTaskRunner

from smelt.errors import ConfigError

RUNNERS = ("process", "thread", "dask")


def default_workers() -> int:
    """Every core."""
    return os.cpu_count() or 1


def make_task_runner(
    name: str = "process", workers: int | None = None, dask_address: str | None = None
) -> TaskRunner:
    """A fresh task runner of kind `name` with `workers` parallel workers (default: cores)."""
    workers = workers or default_workers()
    if workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}")
    if name == "process":
        return ProcessPoolTaskRunner(max_workers=workers)
    if name == "thread":
        return ThreadPoolTaskRunner(max_workers=workers)
    if name == "dask":
        from prefect_dask import DaskTaskRunner

        if dask_address:
            return DaskTaskRunner(address=dask_address)
        return DaskTaskRunner(
            cluster_kwargs={
                "n_workers": workers,
                "threads_per_worker": 1,
                "processes": True,
                "dashboard_address": None,
            }
        )
    raise ConfigError(f"unknown runner {name!r}; choose one of {', '.join(RUNNERS)}")
