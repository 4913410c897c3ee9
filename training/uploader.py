"""Background checkpoint persistence: write step directories locally, upload them to S3.

The training loop hands over a `Snapshot` and goes on; two daemon threads do the rest:

- the writer turns snapshots into local step directories (atomic, marker last) and prunes the
  local copies beyond `keep_last`;
- the uploader (only for s3:// runs) uploads each step directory, one at a time, every file
  verified (`smelt.storage.put_file`: multipart with SHA-256), the marker LAST, then syncs the
  run files (metrics.jsonl, TensorBoard events) and prunes old checkpoints remotely.

A failing upload (S3 down) is retried with exponential backoff for as long as it takes; training
never waits for it, and `close()` waits for whatever is still pending (on exit and on SIGTERM).
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from smelt import storage
from smelt.training import checkpoint
from smelt.training.checkpoint import Snapshot

log = logging.getLogger(__name__)

_STOP = object()
MAX_BACKOFF_S = 30.0


class CheckpointUploader:
    """Persists snapshots under `local_root` and mirrors them to `remote_root` (if given)."""

    def __init__(
        self,
        local_root: str,
        remote_root: str | None,
        keep_last: int,
        run_files: Callable[[], list[str]] = lambda: [],
    ) -> None:
        self.local_root = local_root
        self.remote_root = remote_root
        self.keep_last = keep_last
        self.run_files = run_files  # paths relative to local_root to mirror after each upload
        self.written_steps: list[int] = []
        self.uploaded_steps: list[int] = []
        self.failures = 0
        self._errors: list[BaseException] = []
        self._pending_upload: set[int] = set()
        self._lock = threading.Lock()
        self._abandon = threading.Event()
        self._write_queue: queue.Queue[Any] = queue.Queue()
        self._upload_queue: queue.Queue[Any] = queue.Queue()
        self._writer = threading.Thread(target=self._write_loop, name="ckpt-writer", daemon=True)
        self._writer.start()
        self._uploader = None
        if remote_root is not None:
            self._uploader = threading.Thread(
                target=self._upload_loop, name="ckpt-uploader", daemon=True
            )
            self._uploader.start()

    # ---- API for the training loop ---------------------------------------------------------

    def submit(self, snapshot: Snapshot) -> None:
        """Queue a snapshot (its host copy may still be in flight)."""
        self._raise_errors()
        self._write_queue.put(snapshot)

    def upload_existing(self, step: int) -> None:
        """Queue the upload of a local checkpoint the remote lacks (after a crash)."""
        if self.remote_root is not None:
            with self._lock:
                self._pending_upload.add(step)
            self._upload_queue.put(step)

    def sync_run_files(self) -> None:
        """Queue a mirror of metrics.jsonl and the TensorBoard files to the remote run."""
        if self.remote_root is not None:
            self._upload_queue.put(None)

    def close(self, timeout: float | None = None) -> bool:
        """Wait for every queued write and upload; False if `timeout` ran out first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        self._write_queue.put(_STOP)
        self._writer.join(_remaining(deadline))
        if self._uploader is not None:
            self._upload_queue.put(_STOP)
            self._uploader.join(_remaining(deadline))
        finished = not self._writer.is_alive() and not (
            self._uploader and self._uploader.is_alive()
        )
        if not finished:
            self._abandon.set()
            log.error(
                "checkpoint uploads still pending after %.0fs: steps %s not uploaded",
                timeout or 0,
                sorted(self._pending_upload),
            )
        self._raise_errors()
        return finished

    @property
    def pending(self) -> int:
        return self._write_queue.qsize() + len(self._pending_upload)

    # ---- threads ---------------------------------------------------------------------------

    def _write_loop(self) -> None:
        while (snapshot := self._write_queue.get()) is not _STOP:
            try:
                started = time.perf_counter()
                path = checkpoint.write_local(snapshot, self.local_root)
                log.info(
                    "checkpoint step %d written to %s in %.2fs",
                    snapshot.step,
                    path,
                    time.perf_counter() - started,
                )
                self.written_steps.append(snapshot.step)
                if self.remote_root is not None:
                    with self._lock:
                        self._pending_upload.add(snapshot.step)
                    self._upload_queue.put(snapshot.step)
                with self._lock:
                    protect = set(self._pending_upload)
                checkpoint.prune(self.local_root, self.keep_last, protect)
            except BaseException as exc:  # noqa: BLE001 - surfaced to the loop by submit/close
                log.exception("writing checkpoint step %d failed", snapshot.step)
                self._errors.append(exc)

    def _upload_loop(self) -> None:
        while (step := self._upload_queue.get()) is not _STOP:
            try:
                if step is None:
                    self._sync_files()
                    continue
                self._upload_step(step)
                self._sync_files()
                self._persist(
                    lambda: checkpoint.prune(self.remote_root, self.keep_last),
                    "pruning remote checkpoints",
                )
            except _Abandoned:
                return
            finally:
                with self._lock:
                    self._pending_upload.discard(step)

    def _upload_step(self, step: int) -> None:
        name = checkpoint.step_name(step)
        local_dir = os.path.join(self.local_root, name)
        if not os.path.exists(os.path.join(local_dir, checkpoint.MARKER)):
            log.warning("checkpoint %s was pruned locally before its upload; skipped", local_dir)
            return
        remote_dir = storage.join(self.remote_root, name)
        started = time.perf_counter()
        files = sorted(n for n in os.listdir(local_dir) if n != checkpoint.MARKER)
        for file_name in [*files, checkpoint.MARKER]:  # the marker strictly last
            local, remote = os.path.join(local_dir, file_name), storage.join(remote_dir, file_name)
            self._persist(
                lambda local=local, remote=remote: storage.put_file(local, remote),
                f"uploading {remote}",
            )
        self.uploaded_steps.append(step)
        log.info(
            "checkpoint step %d uploaded to %s in %.2fs",
            step,
            remote_dir,
            time.perf_counter() - started,
        )

    def _sync_files(self) -> None:
        for relative in self.run_files():
            local = os.path.join(self.local_root, relative)
            if os.path.isfile(local):
                remote = storage.join(self.remote_root, *relative.split(os.sep))
                self._persist(
                    lambda local=local, remote=remote: _put_snapshot(local, remote),
                    f"uploading {remote}",
                )

    def _persist(self, action: Callable[[], Any], what: str) -> Any:
        """Run `action` until it succeeds, backing off; only `close(timeout)` gives up."""
        delay = 0.5
        while True:
            try:
                return action()
            except Exception as exc:  # noqa: BLE001 - an outage must never end training
                self.failures += 1
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


def _put_snapshot(local: str, remote: str) -> None:
    """Upload a file that is being appended to: a copy up to its last complete line."""
    with open(local, "rb") as fh:
        data = fh.read()
    if local.endswith(".jsonl"):
        data = data[: data.rfind(b"\n") + 1]
    storage.write_bytes(remote, data)


def _remaining(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - time.monotonic())
