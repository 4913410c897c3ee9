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

Stopping: workers ignore Ctrl-C (the terminal sends it to the whole process group; the parent
decides). When the parent unwinds (Ctrl-C, SIGTERM, an error), `close(cancel=True)` drops the
queued items and sends SIGTERM to every worker: an item in progress ends with `WorkerStopped`
(raised as a `BaseException` inside the item first, so its `finally` blocks remove temporary
files and no `except Exception` in domain code mistakes it for a bad input), then the worker
exits; a worker stuck in a long C call is killed after `STOP_GRACE_S`. No worker outlives the
executor, nor the job's process, even when that is killed.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import select
import signal
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any, Protocol, TypeVar

from smelt.errors import ConfigError

log = logging.getLogger(__name__)

R = TypeVar("R")

STOP_GRACE_S = 3.0  # how long a stopped worker may take to clean up before it is killed
EXIT_AFTER_STOP_S = 1.0  # how long a stopped worker has to send back its item's result


class WorkerStopped(Exception):
    """A worker process was stopped (Ctrl-C, SIGTERM) before it finished its item."""


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
        self._closed = False
        self._starting = threading.Lock()

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
        return self._started().submit(_run_item, fn, *args)

    def _started(self) -> ProcessPoolExecutor:
        """The pool, with all its workers, started by the first caller while the others wait
        (so no later call forks a worker, or restarts a stopped forkserver, behind `close`)."""
        with self._starting:
            if self._closed:
                raise WorkerStopped("the worker pool is closed (the job is stopping)")
            if self._pool is None:
                context = multiprocessing.get_context("forkserver")
                if self.preload:
                    context.set_forkserver_preload(list(self.preload))
                _start_forkserver()
                self._pool = ProcessPoolExecutor(
                    max_workers=self.workers,
                    mp_context=context,
                    initializer=_worker_setup,
                    initargs=(os.getpid(),),
                )
                _OPEN.add(self)
                try:  # each submit forks a worker while none is idle: all of them, here
                    for _ in range(self.workers):
                        self._pool.submit(os.getpid)
                except Exception as exc:  # the forkserver was stopped by `close`
                    raise WorkerStopped(
                        f"the worker pool was closed while starting: {exc}"
                    ) from exc
                log.debug("started %d workers (preloaded %s)", self.workers, self.preload)
            return self._pool

    def close(self, cancel: bool = False) -> None:
        """Stop the workers: after the running items finish, or, with `cancel`, at once
        (queued items dropped, running ones stopped; see the module doc)."""
        pool, self._pool = self._pool, None
        self._closed = self._closed or cancel
        _OPEN.discard(self)
        if pool is None:
            return
        if not cancel:
            pool.shutdown(wait=True)
            return
        workers = list((getattr(pool, "_processes", None) or {}).values())
        # queued items dropped, and workers told to exit after their item; in a thread, since
        # it waits while another thread has the forkserver fork a worker (and the forkserver
        # may still be importing the preloaded modules)
        closer = threading.Thread(
            target=pool.shutdown, kwargs={"wait": False, "cancel_futures": True}, daemon=True
        )
        closer.start()
        closer.join(0.5)
        stop_processes(workers, STOP_GRACE_S)
        closer.join(0.5)
        if closer.is_alive():  # still waiting on the forkserver: stop it, the next pool
            _stop_forkserver()  # starts another one
            closer.join(STOP_GRACE_S)

    def __enter__(self) -> LocalExecutor:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self.close(cancel=exc_type is not None)


_OPEN: weakref.WeakSet[LocalExecutor] = weakref.WeakSet()


def stop_all() -> None:
    """Stop the workers of every open pool of this process, and the forkserver, at once (a
    process about to exit)."""
    for executor in list(_OPEN):
        executor.close(cancel=True)
    _stop_forkserver()


def stop_processes(processes: Sequence[Any], grace: float) -> None:
    """SIGTERM each live process, wait up to `grace` seconds in all, then kill the rest."""
    for process in processes:
        if process.is_alive():
            process.terminate()
    deadline = time.monotonic() + grace
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
    for process in processes:
        if process.is_alive():
            log.warning("worker %s did not stop within %.0f s: killed", process.pid, grace)
            process.kill()
            process.join(1.0)


def _start_forkserver() -> None:
    """Start the forkserver, when not running, with Ctrl-C blocked: it and every worker it
    forks inherit that, so a Ctrl-C at the terminal reaches only the parent, even while the
    forkserver is still importing the preloaded modules (a traceback per process otherwise)."""
    from multiprocessing import forkserver, resource_tracker

    resource_tracker.ensure_running()  # first: starting it unblocks SIGINT in this thread
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        forkserver.ensure_running()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)


def _stop_forkserver() -> None:
    from multiprocessing import forkserver

    pid = getattr(getattr(forkserver, "_forkserver", None), "_forkserver_pid", None)
    if pid:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


# ---- inside a worker process -------------------------------------------------------------------

_busy = False  # whether this worker is running an item (SIGTERM then stops the item)


def _worker_setup(job_pid: int) -> None:
    """Each worker ignores Ctrl-C (the parent stops the workers), stops on SIGTERM, and sends
    itself one when the job's process ends, however it ends (even by SIGKILL: its parent, the
    forkserver, outlives the job while any worker holds its pipe)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _on_sigterm)
    watch = threading.Thread(target=_stop_when_gone, args=(job_pid,), daemon=True)
    watch.start()


def _stop_when_gone(pid: int) -> None:
    """Wait for process `pid` to end (a pidfd where Linux has one, else a poll), then stop."""
    try:
        handle = os.pidfd_open(pid)
    except (AttributeError, OSError):
        handle = None
    if handle is not None:
        select.select([handle], [], [])
    else:  # pragma: no cover - kernels without pidfd
        while _alive(pid):
            time.sleep(1.0)
    if not _busy:  # no one is left to tell this worker to exit
        os._exit(0)
    os.kill(os.getpid(), signal.SIGTERM)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _on_sigterm(signum: int, frame: object) -> None:
    """Stop the item in progress: a `BaseException`, which no `except Exception` in the item
    swallows. An idle worker carries on: the pool's closing tells it to exit (an abrupt exit
    would fail the other workers' items with `BrokenProcessPool`)."""
    if _busy:
        raise KeyboardInterrupt


def _run_item(fn: Callable[..., R], *args: Any) -> R:
    """Run one item in a worker; a SIGTERM during it becomes `WorkerStopped`."""
    global _busy
    _busy = True
    try:
        return fn(*args)
    except KeyboardInterrupt:
        # told to stop: this item's result goes back, then the worker ends (its parent may be
        # gone, and then no one would ever tell it to exit)
        exit_soon = threading.Timer(EXIT_AFTER_STOP_S, os._exit, args=(0,))
        exit_soon.daemon = True
        exit_soon.start()
        raise WorkerStopped(f"worker {os.getpid()} was stopped before it finished") from None
    finally:
        _busy = False
