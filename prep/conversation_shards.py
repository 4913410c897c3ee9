"""Conversation shards: tokenized fine-tuning data, a shard set plus a loss mask per token.

    ROOT/{train,val}/shard_NNNNN.bin    uint32 ids: each conversation, then the end-of-text id
    ROOT/{train,val}/shard_NNNNN.idx    uint64 end offset of each conversation (smelt-shards-v1)
    ROOT/{train,val}/shard_NNNNN.mask   uint8 per token: 1 where the assistant wrote the token
    ROOT/manifest.json                  the shard set's manifest (ARCHITECTURE.md, "On-disk formats")
    ROOT/tokenizer.json                 the tokenizer the conversations were rendered with
    ROOT/conversations.json             the build's record, written last: the marker

The token files are an ordinary shard set, so `smelt shards verify` and the one shard check
(`smelt.prep.shard_check`) apply unchanged; the end-of-text id only closes each conversation
for that check, a reader drops it. The masks are what fine-tuning adds: the record lists each
one's SHA-256 and `check_mask` proves a mask file is the one recorded, holds only 0 and 1, and
has 0 on every end-of-text id. The record also carries what a reader needs besides the tokens
(the pad and end-of-turn ids, the longest conversation allowed) and the build's counts.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from dataclasses import dataclass, field
from typing import IO, Any

import numpy as np

from smelt import storage
from smelt.errors import InputError, IntegrityError
from smelt.prep.layout import ShardsLayout, TokenizerLayout
from smelt.prep.shard_format import (
    OFFSET_DTYPE,
    TOKEN_DTYPE,
    Manifest,
    ShardInfo,
    open_manifest,
    shard_error,
)
from smelt.storage.stage import Marker

FORMAT = "smelt-conversations-v1"
MASK_DTYPE = np.dtype("u1")
DEFAULT_SHARD_TOKENS = 50_000_000  # 200 MB of ids + 50 MB of mask per shard
_CHECKED: set[tuple] = set()  # mask files checked in this process (path, size, mtime, sha)


@dataclass(frozen=True)
class ConversationLayout(ShardsLayout):
    """A shard set's layout plus the masks, the tokenizer copy and the record."""

    MASK = ".mask"
    RECORD = "conversations.json"
    TOKENIZER = TokenizerLayout.TOKENIZER  # where training looks for the data's tokenizer

    @staticmethod
    def mask_path(shard_path: str) -> str:
        """The `.mask` beside a `.bin` (same stem), relative or absolute."""
        return shard_path[: -len(ShardsLayout.TOKENS)] + ConversationLayout.MASK

    @property
    def record(self) -> str:
        return storage.join(self.root, self.RECORD)

    @property
    def tokenizer(self) -> str:
        return storage.join(self.root, self.TOKENIZER)

    def marker(self, fingerprint: str | None = None) -> Marker:
        return Marker(self.record, fingerprint)


@dataclass(frozen=True)
class ConversationShards:
    """A finished conversation shard set: its manifest and its record."""

    manifest: Manifest
    record: dict[str, Any]

    @property
    def layout(self) -> ConversationLayout:
        return ConversationLayout(self.manifest.root)

    @property
    def pad_id(self) -> int:
        return int(self.record["pad_id"])

    @property
    def end_of_turn_id(self) -> int:
        return int(self.record["end_of_turn_id"])

    @property
    def seq_len(self) -> int:
        """No conversation in the set is longer than this many tokens."""
        return int(self.record["seq_len"])

    @property
    def fingerprint(self) -> str:
        return str(self.record["fingerprint"])

    def mask_entry(self, shard: ShardInfo) -> dict[str, Any]:
        return self.record["masks"][ConversationLayout.mask_path(shard.path)]


def open_conversation_shards(uri: str) -> ConversationShards:
    """The finished set at `uri`; an error naming it and the fix when it is not one."""
    layout = ConversationLayout.at(uri)
    record = layout.marker().read()
    if record is None or record.get("format") != FORMAT:
        raise InputError(
            f"{layout.root} holds no finished conversation shards (no {ConversationLayout.RECORD} "
            f"of format {FORMAT}); `smelt sft` tokenizes conversations into RUN/sft_data"
        )
    manifest = open_manifest(layout.root)
    missing = [
        s.path
        for s in manifest.shards
        if ConversationLayout.mask_path(s.path) not in record.get("masks", {})
    ]
    if missing:
        raise IntegrityError(
            f"{layout.record} lists no loss mask for {missing[0]}; delete {layout.root} to "
            "tokenize the conversations again"
        )
    return ConversationShards(manifest, record)


def check_mask(
    mask_path: str, shard: ShardInfo, entry: dict[str, Any], ends: np.ndarray, name: str
) -> None:
    """A local mask file is the one recorded (size, SHA-256), holds 0/1 only and has 0 at every
    end-of-text id (the last token of each conversation); checked once per process."""
    stat = os.stat(mask_path)
    key = (mask_path, stat.st_size, stat.st_mtime_ns, entry["sha256"])
    if key in _CHECKED:
        return
    fix = "delete the set to tokenize the conversations again"
    if stat.st_size != shard.num_tokens * MASK_DTYPE.itemsize:
        raise shard_error(name, f"{stat.st_size} bytes for {shard.num_tokens} tokens", fix)
    with open(mask_path, "rb") as fh:
        data = fh.read()
    if hashlib.sha256(data).hexdigest() != entry["sha256"]:
        raise shard_error(name, "its SHA-256 does not match the record's (corrupted)", fix)
    mask = np.frombuffer(data, dtype=MASK_DTYPE)
    if mask.size and int(mask.max()) > 1:
        raise shard_error(name, f"holds the value {int(mask.max())}; a loss mask is 0 or 1", fix)
    if mask[ends - 1].any():
        raise shard_error(name, "marks an end-of-text id as the assistant's", fix)
    _CHECKED.add(key)


# ---- writing --------------------------------------------------------------------------------


@dataclass
class _OpenShard:
    """The files of the shard being written, and what its entries will say."""

    path: str
    stack: contextlib.ExitStack
    tokens: IO[bytes]
    mask: IO[bytes]
    token_digest: Any = field(default_factory=hashlib.sha256)
    mask_digest: Any = field(default_factory=hashlib.sha256)
    ends: list[int] = field(default_factory=list)
    size: int = 0


class ShardWriter:
    """Appends conversations (ids + assistant mask) to one split's shards of at most
    `shard_tokens` tokens (a conversation is never split), each file written atomically."""

    def __init__(self, root: str, split: str, eos_id: int, shard_tokens: int) -> None:
        self.layout = ConversationLayout(root)
        self.split, self.eos_id, self.shard_tokens = split, eos_id, shard_tokens
        self.shards: list[ShardInfo] = []
        self.masks: dict[str, dict[str, Any]] = {}
        self._open: _OpenShard | None = None

    def add(self, ids: np.ndarray, mask: np.ndarray) -> None:
        """One conversation: its ids and, per id, whether the assistant wrote it."""
        length = len(ids) + 1
        if self._open is not None and self._open.size + length > self.shard_tokens:
            self._close()
        shard = self._open or self._start()
        tokens = np.append(ids, self.eos_id).astype(TOKEN_DTYPE).tobytes()
        flags = np.append(mask, False).astype(MASK_DTYPE).tobytes()
        shard.tokens.write(tokens)
        shard.mask.write(flags)
        shard.token_digest.update(tokens)
        shard.mask_digest.update(flags)
        shard.size += length
        shard.ends.append(shard.size)

    def finish(self) -> tuple[list[ShardInfo], dict[str, dict[str, Any]]]:
        """Close the last shard; the manifest entries and the masks' record entries."""
        if self._open is not None:
            self._close()
        return self.shards, self.masks

    def abort(self) -> None:
        """Drop the shard being written (after an error): its temporary files go, none lands."""
        shard, self._open = self._open, None
        if shard is not None:
            error = RuntimeError("conversation shard build aborted")
            shard.stack.__exit__(type(error), error, None)

    def _start(self) -> _OpenShard:
        path = self.layout.shard_path(self.split, len(self.shards))
        stack = contextlib.ExitStack()
        tokens_tmp = stack.enter_context(storage.atomic_local_path(self.layout.uri(path)))
        mask_uri = self.layout.uri(ConversationLayout.mask_path(path))
        mask_tmp = stack.enter_context(storage.atomic_local_path(mask_uri))
        tokens = stack.enter_context(open(tokens_tmp, "wb"))  # noqa: SIM115 - closed by the stack
        mask = stack.enter_context(open(mask_tmp, "wb"))  # noqa: SIM115
        self._open = _OpenShard(path, stack, tokens, mask)
        return self._open

    def _close(self) -> None:
        shard, self._open = self._open, None
        assert shard is not None
        shard.tokens.flush()
        shard.mask.flush()
        shard.stack.close()  # files closed, then moved (or uploaded) into place
        ends = np.array(shard.ends, dtype=OFFSET_DTYPE)
        storage.write_bytes(self.layout.uri(self.layout.idx_path(shard.path)), ends.tobytes())
        self.shards.append(
            ShardInfo(
                split=self.split,
                path=shard.path,
                num_tokens=shard.size,
                num_docs=len(ends),
                bytes=shard.size * TOKEN_DTYPE.itemsize,
                sha256=shard.token_digest.hexdigest(),
            )
        )
        self.masks[ConversationLayout.mask_path(shard.path)] = {
            "sha256": shard.mask_digest.hexdigest(),
            "bytes": shard.size * MASK_DTYPE.itemsize,
        }


def write_record(layout: ConversationLayout, fingerprint: str, record: dict[str, Any]) -> dict:
    """The record, last: it makes the set finished (for inputs with `fingerprint`)."""
    return layout.marker(fingerprint).write({"format": FORMAT, **record})


def describe(record: dict[str, Any]) -> str:
    """One line of what a build kept and dropped."""
    kept = record["kept"]
    dropped = record["dropped"]
    drops = ", ".join(f"{n} {reason}" for reason, n in sorted(dropped.items())) or "none"
    return (
        f"{kept['train'] + kept['val']:,} of {record['records']:,} conversations kept "
        f"({kept['train']:,} train, {kept['val']:,} val; {record['truncated']:,} truncated at a "
        f"turn), dropped: {drops}"
    )
