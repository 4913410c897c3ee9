"""A wall-clock limit for one call that may hang (trafilatura on pathological HTML).

Two mechanisms, chosen per call:

- In the process's main thread (CLI runs, process-pool and Dask workers, where each task runs
  in the worker's main thread): `signal.setitimer(ITIMER_REAL)` and a SIGALRM handler that
  raises. The previous handler is restored afterwards, and an alarm that was already pending
  (a caller's own deadline) is re-armed with the time it had left.
- In any other thread (Prefect's default thread-pool runner), where signals cannot be used:
  a watchdog timer injects the exception into the working thread with
  `PyThreadState_SetAsyncExc`. Like SIGALRM, it takes effect at the next Python bytecode, so
  both interrupt trafilatura's Python code; neither can stop a single long C call, which the
  HTML size limit bounds instead.

A thread left running after a timeout would keep burning CPU, which is why the limit
interrupts the work itself rather than abandoning it in a background thread.
"""

from __future__ import annotations

import ctypes
import signal
import threading
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class TimeLimitExceeded(BaseException):
    """Raised inside the limited call when its time is up.

    A `BaseException`, like `KeyboardInterrupt`, so that the library's own `except Exception`
    blocks (trafilatura has several around its fallbacks) cannot swallow it.
    """


def call_with_time_limit(fn: Callable[[], T], seconds: float) -> T:
    """Run `fn()`; raise `TimeLimitExceeded` if it runs longer than `seconds` (<= 0: no limit)."""
    if seconds <= 0:
        return fn()
    if threading.current_thread() is threading.main_thread():
        return _with_alarm(fn, seconds)
    return _with_watchdog(fn, seconds)


def _with_alarm(fn: Callable[[], T], seconds: float) -> T:
    def on_alarm(signum: int, frame: object) -> None:
        raise TimeLimitExceeded(f"took longer than {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    outer_left, outer_interval = signal.setitimer(signal.ITIMER_REAL, seconds)
    started = time.monotonic()
    try:
        return fn()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer_left > 0:  # someone else's alarm (e.g. pytest-timeout) was pending: re-arm it
            left = outer_left - (time.monotonic() - started)
            signal.setitimer(signal.ITIMER_REAL, max(left, 0.001), outer_interval)


def _set_async_exc(thread_id: int, exc_type: type[BaseException] | None) -> None:
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread_id), ctypes.py_object(exc_type) if exc_type else None
    )


def _with_watchdog(fn: Callable[[], T], seconds: float) -> T:
    thread_id = threading.get_ident()
    lock = threading.Lock()
    state = {"running": True, "fired": False}

    def expire() -> None:
        with lock:
            if state["running"]:
                state["fired"] = True
                _set_async_exc(thread_id, TimeLimitExceeded)

    watchdog = threading.Timer(seconds, expire)
    watchdog.daemon = True
    watchdog.start()
    try:
        return fn()
    finally:
        with lock:
            state["running"] = False
            fired = state["fired"]
        watchdog.cancel()
        if fired:  # the exception may still be pending if fn() returned just in time
            _set_async_exc(thread_id, None)
