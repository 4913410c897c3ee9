"""Where stage work runs: the `Executor` interface and its plain implementation, a warm pool.

A multi-step job (a corpus build, a shard build, a dedup) is written once, in domain code, as
calls to `executor.map(fn, items, name=...)`. The caller picks the executor:

- `LocalExecutor(workers)`: this process (`workers=1`) or a pool of worker processes that
  lives as long as the executor, shared by every step of the job. Workers are forked from a
  clean *forkserver* that imported the job's modules once (`preload`), so a worker starts in
  milliseconds with trafilatura, pyarrow and friends already loaded, and never imports Prefect.
- `smelt.tasks.executor.PrefectExecutor`: the same calls as Prefect task runs (one per item,
  visible in the UI), whose work runs on a `LocalExecutor` or a Dask cluster.

So tests, notebooks, torchrun jobs and Prefect flows run the very same orchestration code.
`fn` must be a module-level function and its arguments picklable (they travel to workers).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any, Protocol, TypeVar

from smelt.errors import ConfigError

log = logging.getLogger(__name__)

R = TypeVar("R")


def default_workers() -> int:
    """Every core this process may use (its CPU affinity, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def check_workers(workers: int | None) -> int:
    """`workers`, or every core when None; a clear error for zero or a negative count."""
    if workers is None:
        return default_workers()
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"--workers must be a positive number of processes, got {workers!r}")
    return workers


class Executor(Protocol):
    """Runs `fn` over items, in parallel where it can; results come back in item order."""

    workers: int

    def map(self, fn: Callable[..., R], *iterables: Iterable[Any], name: str) -> list[R]:
        """`[fn(*args) for args in zip(*iterables)]`, computed by the executor's workers.

        `name` labels the step (Prefect names each task run `name-<index>`).
        """
        ...


class LocalExecutor:
    """This process (`workers=1`), or a warm pool of `workers` forked worker processes.

    Use it as a context manager (or call `close()`): the pool is started on the first parallel
    `map` and reused by every later one, so a job pays for worker start-up once.
    """

    def __init__(self, workers: int | None = None, preload: Sequence[str] = ()) -> None:
        self.workers = check_workers(workers)
        self.preload = tuple(preload)
        self._pool: ProcessPoolExecutor | None = None

    def map(self, fn: Callable[..., R], *iterables: Iterable[Any], name: str = "") -> list[R]:
        argument_lists = list(zip(*iterables, strict=True))
        if self.workers == 1 or len(argument_lists) <= 1:
            return [fn(*args) for args in argument_lists]
        futures = [self.submit(fn, *args) for args in argument_lists]
        try:
            return [future.result() for future in futures]
        except BaseException:
            for future in futures:
                future.cancel()
            raise

    def submit(self, fn: Callable[..., R], *args: Any) -> Future[R]:
        """Run `fn(*args)` on a worker (in this process when `workers == 1`)."""
        if self.workers == 1:
            future: Future[R] = Future()
            try:
                future.set_result(fn(*args))
            except BaseException as exc:  # noqa: BLE001 - handed to the caller through the future
                future.set_exception(exc)
            return future
        return self._started().submit(fn, *args)

    def _started(self) -> ProcessPoolExecutor:
        if self._pool is None:
            context = multiprocessing.get_context("forkserver")
            if self.preload:
                context.set_forkserver_preload(list(self.preload))
            self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=context)
            log.debug("started %d worker processes (preloaded %s)", self.workers, self.preload)
        return self._pool

    def close(self, cancel: bool = False) -> None:
        """Stop the workers (after the running items finish, unless `cancel`)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=cancel)
            self._pool = None

    def __enter__(self) -> LocalExecutor:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self.close(cancel=exc_type is not None)
