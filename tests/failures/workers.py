"""Items for worker pools in the stopping tests (importable by forkserver workers)."""

from __future__ import annotations

import os
import time


def stuck(fifo: str, record: str) -> bytes:
    """Write this worker's pid to `record`, then block opening a FIFO nobody writes to; on the
    way out (however it ends) leave `record.cleaned`, as an atomic write removes its temp file."""
    with open(record, "w") as fh:
        fh.write(str(os.getpid()))
    try:
        with open(fifo, "rb") as fh:
            return fh.read()
    finally:
        with open(record + ".cleaned", "w") as fh:
            fh.write("cleaned")


def nap(seconds: float) -> int:
    """Sleep, then return this worker's pid."""
    time.sleep(seconds)
    return os.getpid()


def pid() -> int:
    return os.getpid()


def counted_item(calls: str, index: int) -> int:
    """A pool item that records each call; item 5 drops its connection on its first call."""
    with open(calls, "a") as fh:
        fh.write(f"{index}\n")
    with open(calls) as fh:
        if index == 5 and fh.read().split().count("5") == 1:
            raise ConnectionError("connection reset")
    return index * 10
