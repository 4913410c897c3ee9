"""Background checkpoint persistence: write step directories locally, upload them to S3.

The manager hands over a `Snapshot` and training goes on; two daemon threads do the rest:

- the writer turns snapshots into local step directories (atomic, marker last) and prunes the
  local copies beyond `keep_last` (never one that still waits for its upload: those go once
  uploaded);
- the uploader (only for s3:// runs) uploads each step directory, one at a time, every file
  verified (`smelt.storage.put_file`: multipart with SHA-256), the marker LAST, then mirrors
  the growing run files (metrics.jsonl, TensorBoard events) and prunes old checkpoints
  remotely.

A failing upload (S3 down) is retried with exponential backoff; training never waits for it.
`close(timeout)` waits for the local writes, then for the uploads at most `timeout` seconds,
and reports what is still only local: the uploader stops retrying, and as a daemon thread it
never keeps the process alive.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from smelt import storage
from smelt.training import checkpoint
from smelt.training.checkpoint import RunLayout, Snapshot

log = logging.getLogger(__name__)

_STOP = object()
_RUN_FILES = None  # queue item: mirror the growing run files
MAX_BACKOFF_S = 30.0


@dataclass
class NotUploaded:
    """What `close` left only in the local copy of an s3:// run."""

    steps: list[int] = field(default_factory=list)
    run_files: bool = False

    def __bool__(self) -> bool:
        return bool(self.steps) or self.run_files


class CheckpointWriter:
    """Persists snapshots into the `local` run and mirrors them to the `remote` one (if any)."""

    def __init__(self, local: RunLayout, remote: RunLayout | None, keep_last: int) -> None:
        self.local, self.remote, self.keep_last = local, remote, keep_last
        self.written_steps: list[int] = []
        self._errors: list[BaseException] = []
        self._pending_upload: set[int] = set()
        self._run_files_pending = False
        self._lock = threading.Lock()
        self._prune_lock = threading.Lock()  # both threads prune the local copy
        self._abandon = threading.Event()
        self._write_queue: queue.Queue[Any] = queue.Queue()
        self._upload_queue: queue.Queue[Any] = queue.Queue()
        self._writer = threading.Thread(target=self._write_loop, name="ckpt-writer", daemon=True)
        self._writer.start()
        self._uploader = None
        if remote is not None:
            self._uploader = threading.Thread(
                target=self._upload_loop, name="ckpt-uploader", daemon=True
            )
            self._uploader.start()

    # ---- API for the manager ---------------------------------------------------------------

    def submit(self, snapshot: Snapshot) -> None:
        """Queue a snapshot (its host copy may still be in flight)."""
        self._raise_errors()
        self._write_queue.put(snapshot)

    def upload(self, step: int) -> None:
        """Queue the upload of a complete local checkpoint (one the remote lacks)."""
        if self.remote is not None:
            with self._lock:
                self._pending_upload.add(step)
            self._upload_queue.put(step)

    def sync_run_files(self) -> None:
        """Queue a mirror of metrics.jsonl and the TensorBoard files to the remote run."""
        if self.remote is not None:
            with self._lock:
                self._run_files_pending = True
            self._upload_queue.put(_RUN_FILES)

    def close(self, timeout: float | None = None) -> NotUploaded:
        """Wait for every local write, then at most `timeout` seconds (None: as long as it
        takes) for the uploads; returns what was left only local."""
        self._write_queue.put(_STOP)
        self._writer.join()
        if self._uploader is not None:
            self._upload_queue.put(_STOP)
            self._uploader.join(timeout)
            if self._uploader.is_alive():
                self._abandon.set()
        with self._lock:
            left = NotUploaded(sorted(self._pending_upload), self._run_files_pending)
        if left:  # the manager's caller reports it, with what to do
            log.info("uploads still pending after %.0fs: steps %s", timeout or 0, left.steps)
        self._raise_errors()
        return left

    # ---- threads ---------------------------------------------------------------------------

    def _write_loop(self) -> None:
        while (snapshot := self._write_queue.get()) is not _STOP:
            try:
                started = time.perf_counter()
                step = checkpoint.write_local(snapshot, self.local)
                log.info(
                    "checkpoint step %d written to %s in %.2fs",
                    snapshot.step,
                    step.root,
                    time.perf_counter() - started,
                )
                self.written_steps.append(snapshot.step)
                self.upload(snapshot.step)
                self._prune_local()
            except BaseException as exc:  # noqa: BLE001 - surfaced by submit/close
                log.exception("writing checkpoint step %d failed", snapshot.step)
                self._errors.append(exc)

    def _upload_loop(self) -> None:
        while (item := self._upload_queue.get()) is not _STOP:
            try:
                if item is not _RUN_FILES:
                    self._upload_step(item)
                    with self._lock:
                        self._pending_upload.discard(item)
                    self._prune_local()  # what waited for its upload may go now
                self._sync_files()
                if item is not _RUN_FILES:
                    self._persist(
                        lambda: checkpoint.prune(self.remote.root, self.keep_last),
                        "pruning remote checkpoints",
                    )
            except _Abandoned:
                return
            except Exception:  # noqa: BLE001 - an upload error must never end training
                log.exception("uploading checkpoint step %s failed", item)

    def _prune_local(self) -> None:
        """Keep the newest `keep_last` local checkpoints, and every one awaiting upload."""
        with self._prune_lock:
            with self._lock:
                protect = set(self._pending_upload)
            checkpoint.prune(self.local.root, self.keep_last, protect)

    def _upload_step(self, step: int) -> None:
        local, remote = self.local.step(step), self.remote.step(step)
        if not local.marker.done():
            log.warning("checkpoint %s was pruned locally before its upload; skipped", local.root)
            return
        started = time.perf_counter()
        # metrics.jsonl first: a run resumed from this checkpoint keeps the metrics up to its
        # step, so they must be on S3 before the marker says the checkpoint is there
        self._sync_files()
        checkpoint.upload(local, remote, attempt=self._persist)
        log.info(
            "checkpoint step %d uploaded to %s in %.2fs",
            step,
            remote.root,
            time.perf_counter() - started,
        )

    def _sync_files(self) -> None:
        with self._lock:
            self._run_files_pending = False
        try:
            for relative in self.local.growing_files():
                local, remote = self.local.file(relative), self.remote.file(relative)
                self._persist(
                    lambda local=local, remote=remote: _put_complete_lines(local, remote),
                    f"uploading {remote}",
                )
        except BaseException:
            with self._lock:
                self._run_files_pending = True
            raise

    def _persist(self, action: Callable[[], Any], what: str) -> Any:
        """Run `action` until it succeeds, backing off; stop once `close` gave up waiting."""
        delay = 0.5
        while True:
            if self._abandon.is_set():
                raise _Abandoned()
            try:
                return action()
            except Exception as exc:  # noqa: BLE001 - an outage must never end training
                if self._abandon.is_set():
                    raise _Abandoned() from exc
                log.warning(
                    "%s failed (%s: %s); retrying in %.1fs", what, type(exc).__name__, exc, delay
                )
                if self._abandon.wait(delay):
                    raise _Abandoned() from exc
                delay = min(MAX_BACKOFF_S, delay * 2)

    def _raise_errors(self) -> None:
        if self._errors:
            raise self._errors.pop(0)


class _Abandoned(Exception):
    """close(timeout) ran out: stop retrying."""


def _put_complete_lines(local: str, remote: str) -> None:
    """Upload a file that is being appended to: a copy up to its last complete line."""
    with open(local, "rb") as fh:
        data = fh.read()
    if local.endswith(".jsonl"):
        data = data[: data.rfind(b"\n") + 1]
    storage.write_bytes(remote, data)
