"""Prefect's side of `smelt.parallel.Executor`: every item of a step is one task run.

Domain code orchestrates its steps through `executor.map(fn, items, name=...)`. Inside a flow,
`PrefectExecutor` turns each item into a task run named `<name>-<index>` (so the UI shows every
partition with its state, timing and retries) and hands the work itself to:

- a warm `LocalExecutor` pool (runner `process`, the default): the task run waits in a thread of
  the flow's process while a pre-forked worker does the work without importing Prefect;
- the task run's own thread (runner `thread`), at most `workers` at a time;
- a Dask worker (runner `dask`): the flow's task runner is then a `DaskTaskRunner`.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar

from prefect import task
from prefect.cache_policies import NONE
from prefect.task_runners import TaskRunner
from prefect.utilities.annotations import quote

from smelt.errors import ConfigError, SmeltError
from smelt.parallel import LocalExecutor, WorkerStopped, check_workers

R = TypeVar("R")


class PrefectExecutor:
    """Runs each item as a Prefect task run; call `map` inside a flow run."""

    def __init__(
        self,
        workers: int,
        pool: LocalExecutor | None = None,
        retries: int = 1,
        remote: bool = False,
    ) -> None:
        self.workers = workers
        self.pool = pool  # None: the task run does the work itself (thread or Dask)
        self.retries = retries
        self.remote = remote
        # threads of this process share a bound; Dask workers bound themselves
        self._slots = None if remote or pool is not None else threading.BoundedSemaphore(workers)

    def map(self, fn: Callable[..., R], *iterables: Iterable[Any], name: str) -> list[R]:
        argument_lists = list(zip(*iterables, strict=True))
        # a step of one item gains nothing from a worker process: it runs in its task's thread
        pool = self.pool if len(argument_lists) > 1 else None
        slots = self._slots

        def run_item(index: int, args: tuple[Any, ...]) -> R:
            if pool is not None:
                return pool.submit(fn, *args).result()
            if slots is None:
                return fn(*args)
            with slots:
                return fn(*args)

        step = task(
            run_item,
            name=name,
            task_run_name=name + "-{index}",
            cache_policy=NONE,
            retries=self.retries,
            retry_delay_seconds=2,
            retry_condition_fn=worth_retrying,
        )
        # Quoted, Prefect does not walk the arguments looking for futures: for a partition (its
        # input files, its config) that took ~20 ms of CPU per task run, from the cores the work
        # needs. Dask's task runner does not unquote, and there the work runs elsewhere anyway.
        wrap = (lambda args: args) if self.remote else quote
        futures = [step.submit(index, wrap(args)) for index, args in enumerate(argument_lists)]
        return [future.result() for future in futures]


def worth_retrying(task: Any, task_run: Any, state: Any) -> bool:
    """Retry what may pass a second time (a dropped connection, a crashed worker), not a
    user error (it would fail again, later) nor a stop (the job is ending)."""
    exc = state.result(raise_on_failure=False)
    return not isinstance(exc, SmeltError | WorkerStopped)


RUNNERS = ("process", "thread", "dask")


@contextlib.contextmanager
def executor_for(
    runner: str, workers: int | None = None, preload: Sequence[str] = ()
) -> Iterator[PrefectExecutor]:
    """The executor of a flow's stages for `runner` ("process" or "thread"; for "dask" run the
    stages in a subflow whose task runner is `dask_task_runner(...)` and use
    `PrefectExecutor(workers, remote=True)` there). The warm pool lives as long as the block."""
    count = check_workers(workers)
    if runner == "thread":
        yield PrefectExecutor(count)
        return
    if runner != "process":
        raise ConfigError(f"unknown runner {runner!r}; choose one of {', '.join(RUNNERS)}")
    with LocalExecutor(count, preload) as pool:
        yield PrefectExecutor(count, pool=pool)


def dask_task_runner(workers: int | None = None, address: str | None = None) -> TaskRunner:
    """A Dask task runner: the cluster at `address`, or a LocalCluster of single-threaded
    worker processes."""
    from prefect_dask import DaskTaskRunner

    if address:
        return DaskTaskRunner(address=address)
    return DaskTaskRunner(
        cluster_kwargs={
            "n_workers": check_workers(workers),
            "threads_per_worker": 1,
            "processes": True,
            "dashboard_address": None,
        }
    )
