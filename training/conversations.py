"""The fine-tuning batch source: whole conversations packed into (B, T) rows, loss on the
assistant's tokens only.

Reads conversation shards (`smelt.prep.conversation_shards`: token ids plus a loss mask per
token). An epoch is a permutation of the split's conversations seeded by (seed, epoch); the
stream of epochs is consumed in order. A step packs B x W rows (W ranks) first-fit: each
conversation goes into the first row it fits in, and the step is complete at the first
conversation that fits in none (it opens the next step). So a conversation is never split over
two rows, every row holds at least one, and the position in the stream (epoch, index) is all the
state there is: a restored loader continues with exactly the next conversation, also with
another W or B. Rank r takes rows r, r + W, ...

In a row, each conversation gets its own document id (attention never crosses conversations:
`doc_ids`), the padding at the end another one. Targets are the next token where that token is
the assistant's (its reply and its `<|im_end|>`), -100 elsewhere: on prompts, on the last token
of each conversation, on padding. `weights` weigh each target: 1, or `end_of_turn_weight` for
the end-of-turn token (a model that never learns to stop never stops).

Shards are read with `os.pread`; S3 sets are downloaded once into the shard cache, verified
(SHA-256), and every shard and mask gets its integrity check on first use in a process.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator

import numpy as np
import torch

from smelt import storage
from smelt.errors import ConfigError, InputError, IntegrityError
from smelt.model.loss import IGNORE_INDEX
from smelt.prep.conversation_shards import (
    MASK_DTYPE,
    ConversationLayout,
    ConversationShards,
    check_mask,
    open_conversation_shards,
)
from smelt.prep.shard_check import check_local_shard
from smelt.prep.shard_format import TOKEN_DTYPE, ShardInfo, shard_error
from smelt.training.loader import Batch, default_cache_dir

log = logging.getLogger(__name__)

STATE_VERSION = 1


class ConversationReader:
    """Random access to one split's conversations: ids and assistant masks, by index."""

    def __init__(self, uri: str, split: str, cache_dir: str | None = None) -> None:
        self.shards_set: ConversationShards = open_conversation_shards(uri)
        self.split = split
        self.shards: tuple[ShardInfo, ...] = self.shards_set.manifest.split(split)
        self.cache_dir = cache_dir or default_cache_dir(self.shards_set.manifest.root)
        self._files: list[tuple[int, int]] = []  # per shard: token and mask file descriptors
        starts, lengths = [], []
        for shard in self.shards:
            ends = self._open(shard)
            begins = np.concatenate([[0], ends[:-1]])
            starts.append(begins)
            lengths.append(ends - begins - 1)  # the end-of-text id is dropped
        counts = [len(s) for s in starts]
        self.shard_of = np.repeat(np.arange(len(counts)), counts).astype(np.int32)
        self.starts = np.concatenate(starts) if starts else np.zeros(0, np.int64)
        self.lengths = np.concatenate(lengths) if lengths else np.zeros(0, np.int64)

    def __len__(self) -> int:
        return len(self.lengths)

    def conversation(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """(ids int64, assistant mask bool) of conversation `index`, end-of-text dropped."""
        tokens_fd, mask_fd = self._files[int(self.shard_of[index])]
        start, length = int(self.starts[index]), int(self.lengths[index])
        raw = os.pread(tokens_fd, length * TOKEN_DTYPE.itemsize, start * TOKEN_DTYPE.itemsize)
        flags = os.pread(mask_fd, length * MASK_DTYPE.itemsize, start * MASK_DTYPE.itemsize)
        if len(raw) != length * TOKEN_DTYPE.itemsize or len(flags) != length:
            shard = self.shards[int(self.shard_of[index])]
            raise shard_error(
                self.shards_set.manifest.shard_uri(shard),
                f"short read of conversation at token {start} (truncated since it was checked)",
            )
        ids = np.frombuffer(raw, dtype=TOKEN_DTYPE).astype(np.int64)
        return ids, np.frombuffer(flags, dtype=MASK_DTYPE).astype(bool)

    def close(self) -> None:
        for tokens_fd, mask_fd in self._files:
            os.close(tokens_fd)
            os.close(mask_fd)
        self._files.clear()

    def _open(self, shard: ShardInfo) -> np.ndarray:
        """Local, checked copies of one shard's files; its conversations' end offsets. A
        damaged cached copy of an S3 shard is downloaded again, once."""
        try:
            return self._open_checked(shard)
        except IntegrityError:
            if not storage.is_s3(self.shards_set.manifest.root):
                raise
            log.warning("cached copy of %s is damaged: downloading it again", shard.path)
            for relative in _files_of(shard):
                with contextlib.suppress(FileNotFoundError):
                    os.remove(os.path.join(self.cache_dir, relative))
            return self._open_checked(shard)

    def _open_checked(self, shard: ShardInfo) -> np.ndarray:
        manifest, layout = self.shards_set.manifest, self.shards_set.layout
        entry = self.shards_set.mask_entry(shard)
        tokens, offsets, mask = _files_of(shard)
        local = {
            tokens: self._local(tokens, shard.sha256),
            offsets: self._local(offsets, None),
            mask: self._local(mask, entry["sha256"]),
        }
        name = manifest.shard_uri(shard)
        ends = check_local_shard(local[tokens], local[offsets], shard, manifest, name)
        check_mask(local[mask], shard, entry, ends, layout.uri(mask))
        self._files.append((os.open(local[tokens], os.O_RDONLY), os.open(local[mask], os.O_RDONLY)))
        return ends

    def _local(self, relative: str, sha256: str | None) -> str:
        """The file itself, or for S3 a copy in the cache (downloaded once, SHA-256 checked on
        the way when known; the checks above verify the copy on every first use)."""
        uri = self.shards_set.layout.uri(relative)
        if not storage.is_s3(uri):
            return storage.normalize(uri)
        path = os.path.join(self.cache_dir, relative)
        if os.path.exists(path):
            return path
        from smelt.storage.transfer import download_file

        log.info("downloading %s to %s", uri, path)
        try:
            download_file(uri, path, sha256=sha256)
        except IntegrityError:
            raise shard_error(
                uri, "its SHA-256 does not match the manifest's (corrupted on S3)"
            ) from None
        return path


def _files_of(shard: ShardInfo) -> tuple[str, str, str]:
    """A shard's token, offset and mask files, relative to the set's root."""
    return shard.path, shard.idx_path, ConversationLayout.mask_path(shard.path)


def pack_rows(
    lengths: np.ndarray, order: Iterator[int], rows: int, seq_len: int
) -> list[list[int]]:
    """First-fit: conversations from `order` into `rows` rows of `seq_len` tokens, until one
    fits in no row or `order` ends. The one that did not fit is not taken (see `_Stream`)."""
    packed: list[list[int]] = [[] for _ in range(rows)]
    free = [seq_len] * rows
    for index in order:
        length = int(lengths[index])
        row = next((r for r in range(rows) if free[r] >= length), None)
        if row is None:
            break
        packed[row].append(index)
        free[row] -= length
    return packed


class _Stream:
    """Conversation indices from a position on: epoch permutations one after the other (or,
    for evaluation, the stored order once). An index counts as taken only when the consumer
    asks for the next one, so `position` is always the first conversation not packed."""

    def __init__(
        self, count: int, seed: int, epoch: int, position: int, shuffle: bool = True
    ) -> None:
        self.count, self.seed, self.shuffle = count, seed, shuffle
        self.epoch, self.position = epoch, position
        self._order = self._permutation()

    def _permutation(self) -> np.ndarray:
        if not self.shuffle:
            return np.arange(self.count)
        # like the pretraining loader's window order: a function of (seed, epoch) only
        rng = np.random.Generator(np.random.PCG64([self.seed, self.epoch]))
        return rng.permutation(self.count)

    def __iter__(self) -> Iterator[int]:
        while True:
            if self.position >= self.count:
                if not self.shuffle:
                    return  # evaluation: one pass
                self.epoch, self.position = self.epoch + 1, 0
                self._order = self._permutation()
            yield int(self._order[self.position])
            self.position += 1


class ConversationLoader:
    """Endless, seeded, resumable packed batches of one split for rank `rank` of `world_size`."""

    def __init__(
        self,
        uri: str,
        split: str = "train",
        batch_size: int = 8,
        seq_len: int = 256,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        end_of_turn_weight: float = 1.0,
        cache_dir: str | None = None,
    ) -> None:
        if not 0 <= rank < world_size:
            raise ConfigError(f"rank {rank} is outside world_size {world_size}")
        self.reader = ConversationReader(uri, split, cache_dir)
        shards_set = self.reader.shards_set
        require_fits(shards_set, seq_len)
        if not len(self.reader):
            raise InputError(f"{shards_set.manifest.root}: no {split!r} conversations")
        self.split, self.batch_size, self.seq_len, self.seed = split, batch_size, seq_len, seed
        self.rank, self.world_size = rank, world_size
        self.pad_id, self.end_of_turn_id = shards_set.pad_id, shards_set.end_of_turn_id
        self.end_of_turn_weight = end_of_turn_weight
        self.stream = _Stream(len(self.reader), seed, epoch=0, position=0)

    def next_batch(self) -> Batch:
        step_rows = self.batch_size * self.world_size
        rows = pack_rows(self.reader.lengths, iter(self.stream), step_rows, self.seq_len)
        mine = rows[self.rank :: self.world_size]
        return collate(
            [[self.reader.conversation(i) for i in row] for row in mine],
            self.seq_len,
            self.pad_id,
            self.end_of_turn_id,
            self.end_of_turn_weight,
        )

    def state_dict(self) -> dict:
        """JSON-safe position: the next step starts with conversation `position` of `epoch`."""
        return {
            "version": STATE_VERSION,
            "split": self.split,
            "seed": self.seed,
            "seq_len": self.seq_len,
            "epoch": self.stream.epoch,
            "position": self.stream.position,
            "conversations": len(self.reader),
            "fingerprint": self.reader.shards_set.fingerprint,
        }

    def load_state_dict(self, state: dict) -> None:
        """Continue exactly after the saved step (the stream is global: W and B may change)."""
        if state.get("version") != STATE_VERSION:
            raise ConfigError(
                f"conversation loader state version {state.get('version')!r} is not "
                f"{STATE_VERSION}; cannot resume this stream"
            )
        mine = self.state_dict()
        for key in ("split", "seed", "seq_len", "conversations", "fingerprint"):
            if state.get(key) != mine[key]:
                raise ConfigError(
                    f"the run was trained on conversations with {key}={state.get(key)!r}, these "
                    f"have {mine[key]!r}; resume with the same data, seed and --seq-len, or start "
                    "a new --output"
                )
        self.stream = _Stream(
            len(self.reader), self.seed, int(state["epoch"]), int(state["position"])
        )

    def close(self) -> None:
        self.reader.close()


def require_fits(shards_set: ConversationShards, seq_len: int) -> None:
    """Every conversation of the set fits in a row of `seq_len` tokens."""
    if shards_set.seq_len > seq_len:
        raise ConfigError(
            f"the conversations in {shards_set.manifest.root} were fitted to {shards_set.seq_len} "
            f"tokens, more than --seq-len {seq_len}; train with --seq-len {shards_set.seq_len} or "
            "tokenize them again for the shorter length"
        )


def has_conversations(uri: str, split: str) -> bool:
    """Whether the set at `uri` holds any conversation of `split` (without reading shards)."""
    return any(s.num_docs for s in open_conversation_shards(uri).manifest.split(split))


def eval_batches(
    uri: str,
    split: str = "val",
    batch_size: int = 8,
    seq_len: int = 256,
    max_batches: int | None = None,
    cache_dir: str | None = None,
) -> Iterator[Batch]:
    """Deterministic packed batches of the split in stored order (no shuffle, no repeat; the last
    batch may have fewer rows), every target weighted 1: loss on assistant tokens only."""
    reader = ConversationReader(uri, split, cache_dir)
    try:
        shards_set = reader.shards_set
        require_fits(shards_set, seq_len)
        stream = _Stream(len(reader), 0, 0, 0, shuffle=False)
        produced = 0
        while max_batches is None or produced < max_batches:
            rows = [r for r in pack_rows(reader.lengths, iter(stream), batch_size, seq_len) if r]
            if not rows:
                return
            yield collate(
                [[reader.conversation(i) for i in row] for row in rows],
                seq_len,
                shards_set.pad_id,
                shards_set.end_of_turn_id,
                1.0,
            )
            produced += 1
    finally:
        reader.close()


def collate(
    rows: list[list[tuple[np.ndarray, np.ndarray]]],
    seq_len: int,
    pad_id: int,
    end_of_turn_id: int,
    end_of_turn_weight: float,
) -> Batch:
    """Rows of conversations -> inputs, targets, doc_ids and weights of shape (B, T)."""
    inputs = np.full((len(rows), seq_len), pad_id, dtype=np.int64)
    targets = np.full((len(rows), seq_len), IGNORE_INDEX, dtype=np.int64)
    doc_ids = np.zeros((len(rows), seq_len), dtype=np.int32)
    for r, row in enumerate(rows):
        at = 0
        for number, (ids, mask) in enumerate(row):
            end = at + len(ids)
            inputs[r, at:end] = ids
            # position t predicts token t + 1 of the same conversation, if the assistant wrote it
            targets[r, at : end - 1] = np.where(mask[1:], ids[1:], IGNORE_INDEX)
            doc_ids[r, at:end] = number
            at = end
        doc_ids[r, at:] = len(row)  # the padding: a document of its own
    weights = np.ones((len(rows), seq_len), dtype=np.float32)
    weights[targets == end_of_turn_id] = end_of_turn_weight
    return Batch(
        inputs=torch.from_numpy(inputs),
        targets=torch.from_numpy(targets),
        doc_ids=torch.from_numpy(doc_ids),
        weights=torch.from_numpy(weights),
    )
