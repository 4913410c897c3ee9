"""The data loader: (B, T) next-token windows over uint32 shards, local or on S3.

Each split is cut into windows of T+1 tokens with stride T (windows never cross a shard).
An epoch is a permutation of all windows seeded by (seed, epoch); step k takes the positions
[k*B*W, (k+1)*B*W) of it, and rank r of W ranks takes every W-th of those, so ranks never
overlap and together cover the data. The position is one integer per epoch, so state is tiny
and a restored stream continues with exactly the next window (also with a different W or B).

Windows are read with `os.pread`, never a long-lived memmap, so resident memory stays flat
over long runs. S3 shards are downloaded once into a local cache and checked against the
manifest's SHA-256; every shard gets the full integrity check (`smelt.prep.shard_check`) on its
first open in a process, and a bad one raises `IntegrityError` naming it.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from smelt import storage
from smelt.errors import ConfigError, InputError, IntegrityError
from smelt.prep.shard_check import check_local_shard, read_offsets
from smelt.prep.shard_format import TOKEN_DTYPE, Manifest, ShardInfo, open_manifest, shard_error

log = logging.getLogger(__name__)

STATE_VERSION = 1


@dataclass
class Batch:
    """inputs/targets (B, T) int64; doc_ids (B, T) int32: document index within each row;
    weights (B, T) float32: per-target loss weights (fine-tuning batches)."""

    inputs: torch.Tensor
    targets: torch.Tensor
    doc_ids: torch.Tensor | None = None
    weights: torch.Tensor | None = None


def default_cache_dir(shards_uri: str) -> str:
    """`~/.cache/smelt/shards/<hash of uri>`: where S3 shards are kept after download."""
    digest = hashlib.sha256(storage.normalize(shards_uri).encode()).hexdigest()[:16]
    base = os.environ.get("SMELT_CACHE_DIR") or os.path.join(
        os.path.expanduser("~"), ".cache", "smelt"
    )
    return os.path.join(base, "shards", digest)


class ShardReader:
    """Random access to one split's shards: window reads by global window index."""

    def __init__(
        self,
        manifest: Manifest,
        split: str,
        seq_len: int,
        cache_dir: str | None = None,
        verify: bool = True,
    ) -> None:
        self.manifest, self.seq_len, self.verify = manifest, seq_len, verify
        self.shards: tuple[ShardInfo, ...] = manifest.split(split)
        if not self.shards:
            raise InputError(
                f"{manifest.root}: no {split!r} shards in the manifest; rebuild "
                "with a non-zero --val-fraction or use another split"
            )
        counts = [max(0, (s.num_tokens - 1) // seq_len) for s in self.shards]
        self.window_starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self.num_windows = int(self.window_starts[-1])
        if self.num_windows == 0:
            raise InputError(
                f"{manifest.root}: split {split!r} has fewer than seq_len+1 = "
                f"{seq_len + 1} tokens per shard; lower --seq-len"
            )
        self.cache_dir = cache_dir or default_cache_dir(manifest.root)
        self._fds: dict[int, int] = {}
        self._ends: dict[int, np.ndarray] = {}

    def window(self, index: int, with_doc_ids: bool) -> tuple[np.ndarray, np.ndarray | None]:
        """Tokens of window `index` (T+1 uint32) and, optionally, per-token doc ids (T)."""
        shard_no = int(np.searchsorted(self.window_starts, index, side="right") - 1)
        start = (index - int(self.window_starts[shard_no])) * self.seq_len
        fd = self._open(shard_no)
        nbytes = (self.seq_len + 1) * TOKEN_DTYPE.itemsize
        raw = os.pread(fd, nbytes, start * TOKEN_DTYPE.itemsize)
        if len(raw) != nbytes:
            raise shard_error(
                self.manifest.shard_uri(self.shards[shard_no]),
                f"short read at token {start} (truncated since it was checked)",
            )
        tokens = np.frombuffer(raw, dtype=TOKEN_DTYPE)
        if not with_doc_ids:
            return tokens, None
        ends = self._ends[shard_no]
        positions = np.arange(start, start + self.seq_len)
        docs = np.searchsorted(ends, positions, side="right")
        return tokens, (docs - docs[0]).astype(np.int32)

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()
        self._ends.clear()

    def _open(self, shard_no: int) -> int:
        fd = self._fds.get(shard_no)
        if fd is not None:
            return fd
        shard = self.shards[shard_no]
        name = self.manifest.shard_uri(shard)
        local_bin, local_idx = self._local_paths(shard)
        if not self.verify:
            self._ends[shard_no] = read_offsets(local_idx, shard, name)
        else:
            try:
                self._ends[shard_no] = check_local_shard(
                    local_bin, local_idx, shard, self.manifest, name
                )
            except IntegrityError:
                if not storage.is_s3(name):
                    raise
                log.warning("cached copy of %s is damaged: downloading it again", name)
                for path in (local_bin, local_idx):
                    with contextlib.suppress(FileNotFoundError):
                        os.remove(path)
                local_bin, local_idx = self._local_paths(shard)
                self._ends[shard_no] = check_local_shard(
                    local_bin, local_idx, shard, self.manifest, name
                )
        fd = os.open(local_bin, os.O_RDONLY)
        self._fds[shard_no] = fd
        return fd

    def _local_paths(self, shard: ShardInfo) -> tuple[str, str]:
        """Local `.bin` and `.idx` of a shard: the files themselves, or for S3 cached copies
        (the `.bin` downloaded once and SHA-256 checked on the way)."""
        bin_uri, idx_uri = self.manifest.shard_uri(shard), self.manifest.idx_uri(shard)
        if not storage.is_s3(bin_uri):
            return storage.normalize(bin_uri), storage.normalize(idx_uri)
        local_bin = os.path.join(self.cache_dir, shard.path)
        local_idx = os.path.join(self.cache_dir, shard.idx_path)
        if not (os.path.exists(local_bin) and os.path.getsize(local_bin) == shard.bytes):
            from smelt.storage.transfer import download_file

            log.info("downloading %s to %s", bin_uri, local_bin)
            try:
                download_file(bin_uri, local_bin, sha256=shard.sha256)
            except IntegrityError:
                raise shard_error(
                    bin_uri,
                    "its SHA-256 does not match the manifest's (corrupted on S3)",
                    "re-upload it or rebuild with `smelt shards build`",
                ) from None
        if not os.path.exists(local_idx):
            storage.get_file(idx_uri, local_idx)
        return local_bin, local_idx


def epoch_permutation(num_windows: int, seed: int, epoch: int) -> np.ndarray:
    """The window order of one epoch: a function of (seed, epoch) only."""
    rng = np.random.Generator(np.random.PCG64([seed, epoch]))
    dtype = np.int32 if num_windows < 2**31 else np.int64
    return rng.permutation(num_windows).astype(dtype, copy=False)


class WindowStream:
    """Window indices of one split in seeded epochs (epoch e is `epoch_permutation(n, seed, e)`).

    Two ways to hand them out, over the same state (epoch, position):
    - `take(n)`: the next n indices as one slice of the current epoch; when fewer than n are
      left, the next epoch starts first (its tail is skipped). One shard set alone is read
      this way, B x W windows a step, as it always was.
    - `peek(n)` then `advance(n)`: the next n indices one by one, running from the end of an
      epoch into the next without skipping any. A mixture reads each of its sets this way, a
      few windows a step, allocated thousands at a time.
    """

    def __init__(self, num_windows: int, seed: int, epoch: int = 0, position: int = 0) -> None:
        self.num_windows, self.seed = num_windows, seed
        self.epoch, self.position = epoch, position
        self._orders: dict[int, np.ndarray] = {}

    def take(self, count: int) -> np.ndarray:
        if count > self.num_windows:
            raise InputError(
                f"a take of {count} windows from a split of {self.num_windows}; lower the "
                "batch or seq_len"
            )
        if self.position + count > self.num_windows:
            self.epoch, self.position = self.epoch + 1, 0
        taken = self.order(self.epoch)[self.position : self.position + count]
        self.position += count
        return taken

    def peek(self, count: int) -> np.ndarray:
        """The next `count` indices one by one, across epoch ends (the state is unchanged)."""
        parts, epoch, position = [], self.epoch, self.position
        while count:
            if position == self.num_windows:
                epoch, position = epoch + 1, 0
            step = min(count, self.num_windows - position)
            parts.append(self.order(epoch)[position : position + step])
            position, count = position + step, count - step
        return np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)

    def advance(self, count: int) -> None:
        """Move past `count` indices handed out by `peek`."""
        while count and self.position + count > self.num_windows:
            count -= self.num_windows - self.position
            self.epoch, self.position = self.epoch + 1, 0
        self.position += count

    def runs_out(self, counts: list[int]) -> bool:
        """Whether `counts` more windows, in order, would reach into another epoch."""
        return self.position + sum(counts) > self.num_windows

    def restore(self, epoch: int, position: int) -> None:
        self.epoch, self.position = epoch, position

    def order(self, epoch: int) -> np.ndarray:
        """The permutation of `epoch`, kept while it may be needed (from the current epoch on:
        a peek may reach into the next)."""
        if epoch not in self._orders:
            keep = min(epoch, self.epoch)
            self._orders = {e: o for e, o in self._orders.items() if e >= keep}
            self._orders[epoch] = epoch_permutation(self.num_windows, self.seed, epoch)
        return self._orders[epoch]


class ShardLoader:
    """Endless, seeded, resumable (B, T) batches of one split for rank `rank` of `world_size`."""

    def __init__(
        self,
        shards_uri: str,
        split: str = "train",
        batch_size: int = 8,
        seq_len: int = 256,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        cache_dir: str | None = None,
        with_doc_ids: bool = False,
        verify: bool = True,
    ) -> None:
        if batch_size < 1 or seq_len < 1:
            raise ConfigError(f"batch_size ({batch_size}) and seq_len ({seq_len}) must be >= 1")
        if not 0 <= rank < world_size:
            raise ConfigError(f"rank {rank} is outside world_size {world_size}")
        self.manifest = open_manifest(shards_uri)
        self.vocab_size, self.eos_id = self.manifest.vocab_size, self.manifest.eos_id
        self.split, self.batch_size, self.seq_len, self.seed = split, batch_size, seq_len, seed
        self.rank, self.world_size, self.with_doc_ids = rank, world_size, with_doc_ids
        self.reader = ShardReader(self.manifest, split, seq_len, cache_dir, verify)
        self.step_windows = batch_size * world_size
        if self.reader.num_windows < self.step_windows:
            raise InputError(
                f"{self.manifest.root}: split {split!r} has {self.reader.num_windows}"
                f" windows of {seq_len + 1} tokens, fewer than one step needs "
                f"({batch_size} x {world_size} ranks); lower the batch or seq_len"
            )
        self.stream = WindowStream(self.reader.num_windows, seed)

    @property
    def epoch(self) -> int:
        return self.stream.epoch

    @property
    def position(self) -> int:
        return self.stream.position

    @property
    def steps_per_epoch(self) -> int:
        return self.reader.num_windows // self.step_windows

    def __iter__(self) -> Iterator[Batch]:
        while True:
            yield self.next_batch()

    def next_batch(self) -> Batch:
        indices = self.stream.take(self.step_windows)[self.rank :: self.world_size]
        return collate([self.reader.window(int(i), self.with_doc_ids) for i in indices])

    def state_dict(self) -> dict:
        """JSON-safe position: the next step starts at window `position` of epoch `epoch`."""
        return {
            "version": STATE_VERSION,
            "split": self.split,
            "seed": self.seed,
            "seq_len": self.seq_len,
            "epoch": self.epoch,
            "position": self.position,
            "num_windows": self.reader.num_windows,
            "tokenizer_sha256": self.manifest.tokenizer_sha256,
        }

    def load_state_dict(self, state: dict) -> None:
        """Continue exactly after the saved step (the stream is global: W and B may change)."""
        if state.get("version") != STATE_VERSION:
            raise ConfigError(
                f"loader state version {state.get('version')!r} is not "
                f"{STATE_VERSION}; cannot resume this stream"
            )
        for key in ("split", "seed", "seq_len", "num_windows", "tokenizer_sha256"):
            mine = self.state_dict()[key]
            if state.get(key) != mine:
                raise ConfigError(
                    f"loader state was saved with {key}={state.get(key)!r} but "
                    f"this loader has {mine!r}; resume with the same shards, "
                    "seed and seq_len"
                )
        self.stream.restore(int(state["epoch"]), int(state["position"]))

    def close(self) -> None:
        self.reader.close()


def eval_batches(
    shards_uri: str,
    split: str = "val",
    batch_size: int = 8,
    seq_len: int = 256,
    max_batches: int | None = None,
    cache_dir: str | None = None,
    with_doc_ids: bool = False,
) -> Iterator[Batch]:
    """Deterministic batches of consecutive windows (no shuffle), for validation loss."""
    reader = ShardReader(open_manifest(shards_uri), split, seq_len, cache_dir)
    try:
        total = reader.num_windows // batch_size
        limit = total if max_batches is None else min(total, max_batches)
        for b in range(limit):
            yield collate(
                [
                    reader.window(i, with_doc_ids)
                    for i in range(b * batch_size, (b + 1) * batch_size)
                ]
            )
    finally:
        reader.close()


def collate(windows: list[tuple[np.ndarray, np.ndarray | None]]) -> Batch:
    tokens = torch.from_numpy(np.stack([w for w, _ in windows]).astype(np.int64))
    doc_ids = None
    if windows[0][1] is not None:
        doc_ids = torch.from_numpy(np.stack([d for _, d in windows]))
    return Batch(
        inputs=tokens[:, :-1].contiguous(), targets=tokens[:, 1:].contiguous(), doc_ids=doc_ids
    )
