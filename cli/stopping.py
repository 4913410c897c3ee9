"""Ctrl-C and SIGTERM: every `smelt` command stops within seconds and says what it kept.

A terminal sends Ctrl-C (SIGINT) to the whole process group; a supervisor sends SIGTERM to the
command. Either way:

1. the main thread gets `Stopped` (a `KeyboardInterrupt`), so the command unwinds as it does
   for an error: the warm worker pool stops its workers (`smelt.parallel`), Prefect records
   the run as crashed, temporary files are removed (writes are atomic: a file is whole or
   absent, and every stage's marker is written after its outputs);
2. the command prints one line: what was finished (the command's `progress` callback) and
   that the same command, run again, resumes;
3. a watchdog ends the process `GRACE_S` after the signal if unwinding has not (a library
   thread that does not notice, a call that waits): whatever was in flight is redone by the
   rerun, never trusted half-written.

Exit status 128 + the signal number (130 for Ctrl-C, 143 for SIGTERM), as shells report it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator

GRACE_S = 10.0
RERUN = "run the same command again to resume"

_progress: Callable[[], str] | None = None
_reported = threading.Event()
_watchdog: threading.Timer | None = None
_lock = threading.Lock()


class Stopped(KeyboardInterrupt):
    """The command was told to stop by a signal."""

    def __init__(self, signum: int = signal.SIGINT) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


@contextlib.contextmanager
def installed() -> Iterator[None]:
    """While the block runs, SIGINT and SIGTERM raise `Stopped` in the main thread and start
    the watchdog; the previous handlers come back afterwards (a command run in-process, as the
    demo and tests do, leaves the process as it found it)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    signals = (signal.SIGINT, signal.SIGTERM)
    previous = {signum: signal.signal(signum, _on_signal) for signum in signals}
    wakeup, old_wakeup = _watch_signals()
    try:
        yield
    finally:
        signal.set_wakeup_fd(old_wakeup)
        os.close(wakeup)
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _watch_signals() -> tuple[int, int]:
    """Start the watchdog from the signal itself, not from its Python handler: that runs only
    when the main thread next executes Python, and a main thread blocked in a C call (a read
    that retries) may never do so. The C-level handler writes each signal's number to a pipe
    (`signal.set_wakeup_fd`); a thread waiting on it starts the watchdog. Returns the pipe's
    write end and the wakeup fd it replaced."""
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    old = signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)

    def watch() -> None:
        with contextlib.suppress(OSError):
            while data := os.read(read_end, 64):
                for signum in data:
                    if signum in (signal.SIGINT, signal.SIGTERM):
                        _start_watchdog(signum)
        os.close(read_end)

    threading.Thread(target=watch, name="signal-watch", daemon=True).start()
    return write_end, old


def _on_signal(signum: int, frame: object) -> None:
    _start_watchdog(signum)
    raise Stopped(signum)


def report_progress(describe: Callable[[], str]) -> None:
    """Set what the stop line says was finished (`describe()` is called when stopping)."""
    global _progress
    _progress = describe


def stop_line(exc: BaseException) -> str:
    """`stopped (SIGTERM): 3 of 16 partitions finished; run the same command again to resume`."""
    name = exc.args[0] if isinstance(exc, Stopped) else "SIGINT"
    done = ""
    if _progress is not None:
        try:
            done = _progress()
        except Exception as error:  # noqa: BLE001 - the stop line must still be printed
            done = f"progress unknown ({type(error).__name__})"
    return f"stopped ({name}): {done + '; ' if done else ''}{RERUN}"


def exit_code(exc: BaseException) -> int:
    return exc.exit_code if isinstance(exc, Stopped) else 128 + signal.SIGINT


def report(exc: BaseException) -> int:
    """Print the stop line once; the exit status."""
    if not _reported.is_set():
        _reported.set()
        print(stop_line(exc), file=sys.stderr, flush=True)
    return exit_code(exc)


def _start_watchdog(signum: int) -> None:
    global _watchdog
    with _lock:
        if _watchdog is not None:
            return
        _watchdog = threading.Timer(GRACE_S, _force_exit, args=(signum,))
        _watchdog.daemon = True
        _watchdog.start()


def _force_exit(signum: int) -> None:
    """Unwinding took too long: stop the workers and the private server, then exit."""
    from smelt.cli import api
    from smelt.parallel import stop_all

    code = report(Stopped(signum))
    with contextlib.suppress(Exception):
        stop_all()
    with contextlib.suppress(Exception):
        api.stop()
    os._exit(code)
