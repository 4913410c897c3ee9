"""Prefect's side of `smelt.parallel.Executor`: the items of a step as task runs.

Domain code orchestrates its steps through `executor.map(fn, items, name=...)`. Inside a flow,
`PrefectExecutor` turns the items into task runs (so the UI shows the step's progress, timing,
failures and retries) and hands the work itself to:

- a warm `LocalExecutor` pool (runner `process`, the default): a task run stands for up to
  `ITEMS_PER_TASK_RUN` consecutive items, named `<name>-<first>-<last>`: from a thread of the
  flow's process it queues them on the pool (the task runs start in the step's order, largest
  items first, and the pool balances the workers), waits for them, and fails if one of them
  did; its retry queues again only what failed. Prefect's cost per task run (about 20 ms of
  CPU here and as much in the server, on the cores the workers need) is paid once per group;
- the task run's own thread (runner `thread`), one task run `<name>-<index>` per item, at most
  `workers` at a time;
- a Dask worker (runner `dask`): one task run per item; the flow's task runner is then a
  `DaskTaskRunner`.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import wait
from typing import Any, TypeVar

from prefect import task
from prefect.cache_policies import NONE
from prefect.task_runners import TaskRunner
from prefect.utilities.annotations import quote

from smelt.errors import ConfigError, SmeltError
from smelt.parallel import LocalExecutor, WorkerStopped, check_workers

R = TypeVar("R")

ITEMS_PER_TASK_RUN = 4  # on a pool: consecutive items that one task run stands for
ORDER_WAIT_S = 10.0  # how long a group waits for the one before it to queue its items


class PrefectExecutor:
    """Runs a step's items as Prefect task runs; call `map` inside a flow run."""

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
        if self.pool is not None and len(argument_lists) > 1:
            return self._map_on_pool(self.pool, fn, argument_lists, name)
        return self._map_per_item(fn, argument_lists, name)

    def _task(self, body: Callable[..., Any], name: str, run_name: str) -> Any:
        return task(
            body,
            name=name,
            task_run_name=run_name,
            cache_policy=NONE,
            retries=self.retries,
            retry_delay_seconds=2,
            retry_condition_fn=worth_retrying,
        )

    def _map_per_item(
        self, fn: Callable[..., R], argument_lists: list[tuple[Any, ...]], name: str
    ) -> list[R]:
        slots = self._slots

        def run_item(index: int, args: tuple[Any, ...]) -> R:
            if slots is None:
                return fn(*args)
            with slots:
                return fn(*args)

        step = self._task(run_item, name, name + "-{index}")
        # Quoted, Prefect does not walk the arguments looking for futures: for a partition (its
        # input files, its config) that took ~20 ms of CPU per task run, from the cores the work
        # needs. Dask's task runner does not unquote, and there the work runs elsewhere anyway.
        wrap = (lambda args: args) if self.remote else quote
        futures = [step.submit(index, wrap(args)) for index, args in enumerate(argument_lists)]
        return [future.result() for future in futures]

    def _map_on_pool(
        self,
        pool: LocalExecutor,
        fn: Callable[..., R],
        argument_lists: list[tuple[Any, ...]],
        name: str,
    ) -> list[R]:
        done: dict[int, R] = {}  # item -> result, kept across a group's retries
        count = len(argument_lists)
        # each group queues its items once the group before it has: the pool gets them in the
        # step's order (largest first), whichever task run's thread starts first (a bounded
        # wait: the order is worth a little, a thread stuck behind a group that never ran is not)
        queued = [threading.Event() for _ in range(0, count, ITEMS_PER_TASK_RUN)]

        def run_items(first: int, last: int) -> list[R]:
            group = first // ITEMS_PER_TASK_RUN
            try:
                if group:
                    queued[group - 1].wait(ORDER_WAIT_S)
                futures = {
                    index: pool.submit(fn, *argument_lists[index])
                    for index in range(first, last + 1)
                    if index not in done
                }
            finally:
                queued[group].set()
            wait(futures.values())  # the others finish all the same: a retry redoes the failed
            for index, future in futures.items():
                if future.exception() is None:
                    done[index] = future.result()
            for future in futures.values():
                if future.exception() is not None:
                    raise future.exception()
            return [done[index] for index in range(first, last + 1)]

        step = self._task(run_items, name, name + "-{first}-{last}")
        groups = [
            step.submit(first, min(first + ITEMS_PER_TASK_RUN, count) - 1)
            for first in range(0, count, ITEMS_PER_TASK_RUN)
        ]
        return [result for group in groups for result in group.result()]


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
    if runner not in ("process", "thread"):
        raise ConfigError(f"unknown runner {runner!r}; choose one of {', '.join(RUNNERS)}")
    if runner == "thread" or count == 1:  # one worker: the task runs' own threads, one at a time
        yield PrefectExecutor(count)
        return
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
