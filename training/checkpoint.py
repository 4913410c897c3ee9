"""Checkpoints: snapshot to host memory, write a step directory atomically, find and verify.

A checkpoint is `RUN/step_NNNNNNNN/` holding

    model.safetensors      weights (model config in the header)
    optimizer.safetensors  AdamW moments and step counts, keyed `<param>/<key>`
    optimizer.json         parameter groups (hyperparameters, parameter names)
    trainer.json           step, tokens seen, schedule, world size, train and model config
    ranks.json             per rank: data-loader position and every RNG state
    config.json            the model config (what generate/export rebuild the model from)
    COMPLETE               {"step", "files": {name: {"sha256", "bytes"}}}: written last

Locally the directory is built under a hidden temporary name and renamed into place, so a
`step_*` directory is whole or absent; on S3 the marker is uploaded after every other file. A
checkpoint without its marker, or whose files do not match the marker's checksums, is never
resumed from. Nothing here unpickles: tensors are safetensors, the rest JSON.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from smelt import storage
from smelt.errors import IntegrityError
from smelt.model.checkpoint_io import load_weights, save_weights
from smelt.model.config import ModelConfig

log = logging.getLogger(__name__)

FORMAT = "smelt-checkpoint-v1"
MARKER = "COMPLETE"
_STEP_RE = re.compile(r"^step_(\d{8,})$")


def step_name(step: int) -> str:
    return f"step_{step:08d}"


def parse_step(name: str) -> int | None:
    match = _STEP_RE.match(name)
    return int(match.group(1)) if match else None


@dataclass
class Snapshot:
    """A checkpoint's content in host memory, detached from the live training state.

    `start_copy` launches the device-to-host copy (a CUDA side stream into pinned memory, or a
    CPU thread cloning tensors) so that it overlaps the next forward/backward; the loop calls
    `wait_copied` before the next optimizer step modifies the parameters.
    """

    step: int
    model_config: ModelConfig
    model: dict[str, torch.Tensor]
    optimizer: dict[str, torch.Tensor]
    documents: dict[str, Any]  # file name -> JSON-safe content
    _done: threading.Event = field(default_factory=threading.Event, repr=False)
    _cuda_event: Any = field(default=None, repr=False)
    _error: BaseException | None = field(default=None, repr=False)
    _started: bool = field(default=False, repr=False)

    def start_copy(self) -> None:
        self._started = True
        sources = [self.model, self.optimizer]
        if any(t.is_cuda for part in sources for t in part.values()):
            self._copy_cuda()
        else:
            threading.Thread(target=self._copy_cpu, name="checkpoint-copy", daemon=True).start()

    def _copy_cpu(self) -> None:
        try:
            self.model = {k: v.detach().clone() for k, v in self.model.items()}
            self.optimizer = {k: v.detach().clone() for k, v in self.optimizer.items()}
        except BaseException as exc:  # noqa: BLE001 - reported by wait_copied
            self._error = exc
        finally:
            self._done.set()

    def _copy_cuda(self) -> None:
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            self.model = {k: _to_pinned(v) for k, v in self.model.items()}
            self.optimizer = {k: _to_pinned(v) for k, v in self.optimizer.items()}
        self._cuda_event = stream.record_event()

    def wait_copied(self) -> None:
        """Block until the host copy is complete (the only wait the training loop sees)."""
        if not self._started:  # never started: copy now, in this thread
            self._started = True
            self._copy_cpu()
        if self._cuda_event is not None:
            self._cuda_event.synchronize()
            self._done.set()
        self._done.wait()
        if self._error is not None:
            raise self._error


def _to_pinned(tensor: torch.Tensor) -> torch.Tensor:
    if not tensor.is_cuda:
        return tensor.detach().clone()
    host = torch.empty(tensor.shape, dtype=tensor.dtype, device="cpu", pin_memory=True)
    return host.copy_(tensor.detach(), non_blocking=True)


# ---- writing --------------------------------------------------------------------------------


def write_local(snapshot: Snapshot, root: str) -> str:
    """Write `snapshot` as `root/step_NNNNNNNN` atomically (temp dir + rename); returns its path."""
    snapshot.wait_copied()
    final = os.path.join(root, step_name(snapshot.step))
    tmp = os.path.join(root, f".{step_name(snapshot.step)}.tmp-{uuid.uuid4().hex[:8]}")
    os.makedirs(tmp)
    try:
        save_weights(
            {k: v.contiguous() for k, v in snapshot.model.items()},
            os.path.join(tmp, "model.safetensors"),
            config=snapshot.model_config,
        )
        save_file(
            {k: v.contiguous() for k, v in snapshot.optimizer.items()},
            os.path.join(tmp, "optimizer.safetensors"),
        )
        for name, content in snapshot.documents.items():
            with open(os.path.join(tmp, name), "w", encoding="utf-8") as fh:
                json.dump(content, fh, indent=1, sort_keys=True)
        files = {name: _describe(os.path.join(tmp, name)) for name in sorted(os.listdir(tmp))}
        for name in files:
            _fsync(os.path.join(tmp, name))
        marker = {"format": FORMAT, "step": snapshot.step, "files": files}
        with open(os.path.join(tmp, MARKER), "w", encoding="utf-8") as fh:
            json.dump(marker, fh, indent=1, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
        if os.path.exists(final):  # an older copy of the same step (a re-run after a crash)
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def _describe(path: str) -> dict[str, Any]:
    return {"sha256": storage.sha256_file(path), "bytes": os.path.getsize(path)}


def _fsync(path: str) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


# ---- finding and reading --------------------------------------------------------------------


def complete_steps(run_uri: str) -> dict[int, str]:
    """{step: step URI} of the complete checkpoints (marker present) under a run."""
    if not storage.exists(run_uri):
        return {}
    found = {}
    for uri in storage.list_files(run_uri, suffixes=[MARKER]):
        step_dir = storage.parent(uri)
        step = parse_step(storage.basename(step_dir))
        if (
            storage.basename(uri) == MARKER
            and step is not None
            and storage.normalize(storage.parent(step_dir)) == storage.normalize(run_uri)
        ):
            found[step] = step_dir
    return dict(sorted(found.items()))


def read_marker(step_uri: str) -> dict[str, Any]:
    try:
        marker = json.loads(storage.read_text(storage.join(step_uri, MARKER)))
    except FileNotFoundError:
        raise IntegrityError(
            f"{step_uri} has no {MARKER} marker: the checkpoint is incomplete; "
            "resume from an earlier step"
        ) from None
    if marker.get("format") != FORMAT:
        raise IntegrityError(
            f"{step_uri}: checkpoint format {marker.get('format')!r} is not {FORMAT!r}"
        )
    return marker


def verify_local(step_dir: str) -> dict[str, Any]:
    """Check every file of a local checkpoint against its marker; returns the marker."""
    marker = read_marker(step_dir)
    for name, expected in marker["files"].items():
        path = os.path.join(step_dir, name)
        if not os.path.isfile(path):
            raise IntegrityError(f"checkpoint {step_dir} lacks {name}; it cannot be resumed")
        if storage.sha256_file(path) != expected["sha256"]:
            raise IntegrityError(
                f"checkpoint file {path} does not match the SHA-256 in its "
                f"{MARKER} marker (corrupted); delete {step_dir} to resume "
                "from the previous checkpoint"
            )
    return marker


def download(step_uri: str, local_dir: str) -> str:
    """Copy a (remote) complete checkpoint into `local_dir` verified; the marker lands last."""
    marker = read_marker(step_uri)
    tmp = os.path.join(
        os.path.dirname(local_dir), f".{os.path.basename(local_dir)}.dl-{uuid.uuid4().hex[:8]}"
    )
    os.makedirs(tmp)
    try:
        for name in marker["files"]:
            storage.get_file(storage.join(step_uri, name), os.path.join(tmp, name))
        storage.get_file(storage.join(step_uri, MARKER), os.path.join(tmp, MARKER))
        verify_local(tmp)
        if os.path.exists(local_dir):
            shutil.rmtree(local_dir)
        os.replace(tmp, local_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("downloaded checkpoint %s -> %s", step_uri, local_dir)
    return local_dir


@dataclass
class LoadedCheckpoint:
    step: int
    trainer: dict[str, Any]
    ranks: list[dict[str, Any]]
    model_config: ModelConfig
    model: dict[str, torch.Tensor]
    optimizer: dict[str, torch.Tensor]
    optimizer_meta: dict[str, Any]


def load_local(step_dir: str, verify: bool = True) -> LoadedCheckpoint:
    """Read a local checkpoint (checksums verified first)."""
    marker = verify_local(step_dir) if verify else read_marker(step_dir)

    def read_json(name: str) -> Any:
        with open(os.path.join(step_dir, name), encoding="utf-8") as fh:
            return json.load(fh)

    trainer = read_json("trainer.json")
    model, _ = load_weights(os.path.join(step_dir, "model.safetensors"))
    return LoadedCheckpoint(
        step=marker["step"],
        trainer=trainer,
        ranks=read_json("ranks.json"),
        model_config=ModelConfig.from_dict(trainer["model_config"]),
        model=model,
        optimizer=load_file(os.path.join(step_dir, "optimizer.safetensors")),
        optimizer_meta=read_json("optimizer.json"),
    )


# ---- pruning --------------------------------------------------------------------------------


def prune(run_uri: str, keep_last: int, protect: set[int] | frozenset[int] = frozenset()) -> None:
    """Delete complete checkpoints older than the newest `keep_last` (marker first, so a
    half-deleted checkpoint is never taken for a complete one)."""
    steps = list(complete_steps(run_uri))
    for step in steps[: max(0, len(steps) - keep_last)]:
        if step in protect:
            continue
        step_uri = storage.join(run_uri, step_name(step))
        with contextlib.suppress(FileNotFoundError):
            storage.delete(storage.join(step_uri, MARKER))
        storage.delete(step_uri, recursive=True)
        log.info("pruned checkpoint %s", step_uri)
