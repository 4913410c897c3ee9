"""A run directory on disk: its layout (the one place its file names are spelled) and the
checkpoint format `smelt-checkpoint-v1`.

    RUN/run.json                 the configuration the run started with
    RUN/metrics.jsonl            one JSON object per optimizer step
    RUN/tb/                      TensorBoard event files
    RUN/tokenizer.json           the tokenizer the shards were built with
    RUN/sft_data/                fine-tuning runs: the conversations, tokenized once
    RUN/step_NNNNNNNN/
        model.safetensors        weights (model config in the header)
        optimizer.safetensors    AdamW moments and step counts, keyed `<param>/<key>`
        optimizer.json           parameter groups (hyperparameters, parameter names)
        trainer.json             step, tokens, schedule, world size, configs, tokenizer SHA-256
        ranks.json               per rank: data-loader position and every RNG state
        config.json              the model config (what generate/export rebuild the model from)
        COMPLETE                 {"format", "step", "files": {name: {"sha256", "bytes"}}}

A step directory follows the stage contract of `smelt.storage.stage`: every file first, the
`COMPLETE` marker last. Locally the directory is built under a hidden temporary name and
renamed into place, so a `step_*` directory is whole or absent; on S3 the marker is uploaded
after every other file and deleted first when pruning. A checkpoint without its marker, or
whose files do not match the marker's checksums, is never resumed from. Nothing here
unpickles: tensors are safetensors, the rest JSON.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from smelt import storage
from smelt.errors import IntegrityError
from smelt.model.checkpoint_io import load_weights, save_weights
from smelt.model.config import ModelConfig
from smelt.prep.layout import TokenizerLayout
from smelt.storage.stage import Marker

log = logging.getLogger(__name__)

FORMAT = "smelt-checkpoint-v1"
_STEP_RE = re.compile(r"^step_(\d{8,})$")


# ---- layout ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class StepLayout:
    """The files of one checkpoint directory `root` (a local path or an s3:// URI)."""

    root: str

    MODEL = "model.safetensors"
    OPTIMIZER = "optimizer.safetensors"
    OPTIMIZER_GROUPS = "optimizer.json"
    TRAINER = "trainer.json"
    RANKS = "ranks.json"
    MODEL_CONFIG = "config.json"
    MARKER = "COMPLETE"

    def file(self, name: str) -> str:
        return storage.join(self.root, name)

    @property
    def model(self) -> str:
        return self.file(self.MODEL)

    @property
    def optimizer(self) -> str:
        return self.file(self.OPTIMIZER)

    @property
    def trainer(self) -> str:
        return self.file(self.TRAINER)

    @property
    def ranks(self) -> str:
        return self.file(self.RANKS)

    @property
    def marker(self) -> Marker:
        """The completion marker (any fingerprint: a run's identity lives in run.json)."""
        return Marker(self.file(self.MARKER))

    @property
    def step(self) -> int | None:
        return RunLayout.step_of(self.root)


@dataclass(frozen=True)
class RunLayout:
    """The files of a run directory `root` (a local path or an s3:// URI)."""

    root: str

    RUN_FILE = "run.json"
    METRICS = "metrics.jsonl"
    TENSORBOARD = "tb"
    TOKENIZER = TokenizerLayout.TOKENIZER
    SFT_DATA = "sft_data"

    def file(self, name: str) -> str:
        return storage.join(self.root, name)

    @property
    def run_file(self) -> str:
        return self.file(self.RUN_FILE)

    @property
    def metrics(self) -> str:
        return self.file(self.METRICS)

    @property
    def tensorboard(self) -> str:
        return self.file(self.TENSORBOARD)

    @property
    def tokenizer(self) -> str:
        return self.file(self.TOKENIZER)

    @property
    def sft_data(self) -> str:
        """Conversation shards of a fine-tuning run (`smelt.prep.conversation_shards`)."""
        return self.file(self.SFT_DATA)

    def step(self, step: int) -> StepLayout:
        return StepLayout(self.file(f"step_{step:08d}"))

    def temporary_step_dir(self, step: int, purpose: str) -> str:
        """A hidden sibling of `step(step)`: listings skip it, `remove_temporaries` clears it."""
        return self.file(f".step_{step:08d}.{purpose}-{uuid.uuid4().hex[:8]}")

    @staticmethod
    def step_of(uri: str) -> int | None:
        """The step of a `step_NNNNNNNN` directory URI, None for any other name."""
        match = _STEP_RE.match(storage.basename(uri))
        return int(match.group(1)) if match else None

    def growing_files(self) -> list[str]:
        """Run files that change while training (metrics, TensorBoard events), relative to
        the root, that exist locally: what is mirrored to S3 after each checkpoint."""
        found = [self.METRICS] if os.path.isfile(self.metrics) else []
        for folder, _, names in os.walk(self.tensorboard):
            found += [os.path.relpath(os.path.join(folder, n), self.root) for n in names]
        return found

    def run_files(self) -> list[str]:
        """Every run file that exists locally, checkpoints excepted."""
        fixed = [n for n in (self.RUN_FILE, self.TOKENIZER) if os.path.isfile(self.file(n))]
        return fixed + self.growing_files()

    def remove_temporaries(self) -> None:
        """Delete the hidden directories of checkpoint writes a crash interrupted (local)."""
        if os.path.isdir(self.root):
            for name in os.listdir(self.root):
                if name.startswith(".step_"):
                    shutil.rmtree(os.path.join(self.root, name), ignore_errors=True)


def cache_root() -> str:
    return os.environ.get("SMELT_CACHE_DIR") or os.path.join(
        os.path.expanduser("~"), ".cache", "smelt"
    )


def local_root(output: str, cache_dir: str | None = None) -> str:
    """Where a run is written locally: the output itself, or for s3:// outputs a local mirror
    (`cache_dir`, default `SMELT_CACHE_DIR`/runs/<hash of the URI>) that is uploaded."""
    output = storage.normalize(output)
    if not storage.is_s3(output):
        return output
    digest = hashlib.sha256(output.encode()).hexdigest()[:16]
    return storage.normalize(cache_dir) if cache_dir else os.path.join(cache_root(), "runs", digest)


# ---- a checkpoint in memory -----------------------------------------------------------------


@dataclass
class Snapshot:
    """A checkpoint's content in host memory, detached from the live training state.

    `start_copy` launches the device-to-host copy (a CUDA side stream into pinned memory, or a
    CPU thread cloning tensors) so that it overlaps the next forward/backward; the manager
    calls `wait_copied` before the next optimizer step modifies the parameters.
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


def write_local(snapshot: Snapshot, run: RunLayout) -> StepLayout:
    """Write `snapshot` as a step directory of the local `run`: every file, then the marker,
    in a hidden directory renamed into place (whole or absent)."""
    snapshot.wait_copied()
    final = run.step(snapshot.step)
    tmp = StepLayout(run.temporary_step_dir(snapshot.step, "tmp"))
    os.makedirs(tmp.root)
    try:
        save_weights(
            {k: v.contiguous() for k, v in snapshot.model.items()},
            tmp.model,
            config=snapshot.model_config,
        )
        save_file({k: v.contiguous() for k, v in snapshot.optimizer.items()}, tmp.optimizer)
        for name, content in snapshot.documents.items():
            with open(tmp.file(name), "w", encoding="utf-8") as fh:
                json.dump(content, fh, indent=1, sort_keys=True)
        files = {name: _describe(tmp.file(name)) for name in sorted(os.listdir(tmp.root))}
        for name in files:
            _fsync(tmp.file(name))
        tmp.marker.write({"format": FORMAT, "step": snapshot.step, "files": files})
        if os.path.exists(final.root):  # an older copy of the same step (a re-run after a crash)
            shutil.rmtree(final.root)
        os.replace(tmp.root, final.root)
    except BaseException:
        shutil.rmtree(tmp.root, ignore_errors=True)
        raise
    return final


def _describe(path: str) -> dict[str, Any]:
    return {"sha256": storage.sha256_file(path), "bytes": os.path.getsize(path)}


def _fsync(path: str) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


# ---- finding and reading --------------------------------------------------------------------


def complete_steps(run_uri: str) -> dict[int, str]:
    """{step: step URI} of the complete checkpoints (marker present) directly under a run."""
    if not storage.exists(run_uri):
        return {}
    run = storage.normalize(run_uri)
    found = {}
    for uri in storage.list_files(run_uri, suffixes=[StepLayout.MARKER]):
        step_dir = storage.parent(uri)
        step = RunLayout.step_of(step_dir)
        if (
            storage.basename(uri) == StepLayout.MARKER
            and step is not None
            and storage.normalize(storage.parent(step_dir)) == run
        ):
            found[step] = step_dir
    return dict(sorted(found.items()))


def read_marker(step: StepLayout) -> dict[str, Any]:
    """The marker of a complete checkpoint; IntegrityError for an incomplete or foreign one."""
    marker = step.marker.read()
    if marker is None:
        raise IntegrityError(
            f"{step.root} has no {StepLayout.MARKER} marker: the checkpoint is incomplete; "
            "resume from an earlier step"
        )
    if marker.get("format") != FORMAT:
        raise IntegrityError(
            f"{step.root}: checkpoint format {marker.get('format')!r} is not {FORMAT!r}"
        )
    return marker


def read_document(step: StepLayout, name: str) -> Any:
    """One JSON file of a checkpoint (local or remote), e.g. `StepLayout.TRAINER`."""
    return json.loads(storage.read_text(step.file(name)))


def verify_local(step: StepLayout) -> dict[str, Any]:
    """Check every file of a local checkpoint against its marker; returns the marker."""
    marker = read_marker(step)
    for name, expected in marker["files"].items():
        path = step.file(name)
        if not os.path.isfile(path):
            raise IntegrityError(f"checkpoint {step.root} lacks {name}; it cannot be resumed")
        if storage.sha256_file(path) != expected["sha256"]:
            raise IntegrityError(
                f"checkpoint file {path} does not match the SHA-256 in its "
                f"{StepLayout.MARKER} marker (corrupted); delete {step.root} to resume "
                "from the previous checkpoint"
            )
    return marker


def download(remote: StepLayout, local: StepLayout) -> StepLayout:
    """Copy a remote complete checkpoint to `local`, verified; its marker lands last."""
    marker = read_marker(remote)
    hidden = RunLayout(os.path.dirname(local.root)).temporary_step_dir(marker["step"], "dl")
    tmp = StepLayout(hidden)
    os.makedirs(tmp.root)
    try:
        for name in marker["files"]:
            storage.get_file(remote.file(name), tmp.file(name))
        tmp.marker.write(marker)
        verify_local(tmp)
        if os.path.exists(local.root):
            shutil.rmtree(local.root)
        os.replace(tmp.root, local.root)
    finally:
        shutil.rmtree(tmp.root, ignore_errors=True)
    log.info("downloaded checkpoint %s -> %s", remote.root, local.root)
    return local


Attempt = Callable[[Callable[[], Any], str], Any]


def upload(local: StepLayout, remote: StepLayout, attempt: Attempt | None = None) -> None:
    """Copy a local complete checkpoint to `remote`: every file, then the marker.

    `attempt(action, description)` runs each transfer (the background writer retries there).
    """
    attempt = attempt or (lambda action, _what: action())
    marker = read_marker(local)
    for name in sorted(marker["files"]):
        attempt(
            lambda name=name: storage.put_file(local.file(name), remote.file(name)),
            f"uploading {remote.file(name)}",
        )
    attempt(lambda: remote.marker.write(marker), f"uploading {remote.file(StepLayout.MARKER)}")


@dataclass
class LoadedCheckpoint:
    step: int
    trainer: dict[str, Any]
    ranks: list[dict[str, Any]]
    model_config: ModelConfig
    model: dict[str, torch.Tensor]
    optimizer: dict[str, torch.Tensor]
    optimizer_groups: dict[str, Any]


def load_local(step: StepLayout, verify: bool = True) -> LoadedCheckpoint:
    """Read a local checkpoint (checksums verified first)."""
    marker = verify_local(step) if verify else read_marker(step)
    trainer = read_document(step, StepLayout.TRAINER)
    model, _ = load_weights(step.model)
    return LoadedCheckpoint(
        step=marker["step"],
        trainer=trainer,
        ranks=read_document(step, StepLayout.RANKS),
        model_config=ModelConfig.from_dict(trainer["model_config"]),
        model=model,
        optimizer=load_file(step.optimizer),
        optimizer_groups=read_document(step, StepLayout.OPTIMIZER_GROUPS),
    )


def tokenizer_sha256(step: StepLayout) -> str | None:
    """The SHA-256 of the tokenizer a checkpoint was trained with, as it recorded it
    (`trainer.json`; checkpoints written before it recorded it there: the loader state)."""
    recorded = read_document(step, StepLayout.TRAINER).get("tokenizer_sha256")
    if recorded:
        return recorded
    ranks = read_document(step, StepLayout.RANKS)
    return (ranks[0].get("loader") or {}).get("tokenizer_sha256") if ranks else None


# ---- deleting -------------------------------------------------------------------------------


def delete(step: StepLayout) -> None:
    """Delete a checkpoint, its marker first: a half-deleted one is never taken as complete."""
    step.marker.clear()
    storage.delete(step.root, recursive=True)


def prune(run_uri: str, keep_last: int, protect: set[int] | frozenset[int] = frozenset()) -> None:
    """Delete the complete checkpoints older than the newest `keep_last` (not `protect`)."""
    steps = list(complete_steps(run_uri))
    for step in steps[: max(0, len(steps) - keep_last)]:
        if step not in protect:
            with contextlib.suppress(FileNotFoundError):
                delete(RunLayout(run_uri).step(step))
            log.info("pruned checkpoint step %d of %s", step, run_uri)
