"""`smelt shards verify`: prove that every shard is exactly what the manifest says.

Per shard, streamed in bounded chunks (local or S3): size and SHA-256 of the `.bin` against the
manifest, every id below `vocab_size`, the `.idx` offsets strictly increasing with the last one
equal to `num_tokens`, and the token before each offset the end-of-text id. The first shard that
fails raises `IntegrityError` naming it.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

import numpy as np

from smelt import storage
from smelt.errors import IntegrityError
from smelt.training.shard_format import (
    OFFSET_DTYPE,
    TOKEN_DTYPE,
    Manifest,
    ShardInfo,
    open_manifest,
)

log = logging.getLogger(__name__)

CHUNK_TOKENS = 1 << 22  # 16 MiB per read


@dataclass(frozen=True)
class VerifyReport:
    """What a successful verification covered."""

    root: str
    shards: int
    tokens: int
    docs: int
    bytes: int

    def summary(self) -> str:
        return (
            f"OK {self.root}: {self.shards} shards, {self.tokens:,} tokens, "
            f"{self.docs:,} documents, {self.bytes:,} bytes match the manifest"
        )


def verify_shards(uri: str) -> VerifyReport:
    """Check the dataset at `uri` (root or manifest.json); raise `IntegrityError` on a mismatch."""
    manifest = open_manifest(uri, check_files=True)
    for shard in manifest.shards:
        verify_shard(manifest, shard)
        log.info("verified %s", shard.path)
    return VerifyReport(
        root=manifest.root,
        shards=len(manifest.shards),
        tokens=manifest.num_tokens(),
        docs=sum(s.num_docs for s in manifest.shards),
        bytes=sum(s.bytes for s in manifest.shards),
    )


def verify_shard(manifest: Manifest, shard: ShardInfo) -> None:
    """All checks of one shard (see the module docstring)."""
    name = manifest.shard_uri(shard)
    ends = _read_offsets(manifest, shard)
    digest, position, top = hashlib.sha256(), 0, -1
    boundary_tokens: list[np.ndarray] = []
    with storage.open_read(name) as fh:
        while chunk := fh.read(CHUNK_TOKENS * TOKEN_DTYPE.itemsize):
            digest.update(chunk)
            if len(chunk) % TOKEN_DTYPE.itemsize:
                raise IntegrityError(f"shard {name}: size is not a multiple of 4 bytes")
            tokens = np.frombuffer(chunk, dtype=TOKEN_DTYPE)
            top = max(top, int(tokens.max()))
            # documents ending inside this chunk: position < end <= position + len(tokens)
            lo = np.searchsorted(ends, position, side="right")
            hi = np.searchsorted(ends, position + len(tokens), side="right")
            boundary_tokens.append(tokens[ends[lo:hi] - 1 - position])
            position += len(tokens)
    if position * TOKEN_DTYPE.itemsize != shard.bytes:
        raise IntegrityError(f"shard {name}: {position * 4} bytes, manifest says {shard.bytes}")
    if digest.hexdigest() != shard.sha256:
        raise IntegrityError(
            f"shard {name}: SHA-256 {digest.hexdigest()[:16]}… does not match "
            f"the manifest's {shard.sha256[:16]}… (corrupted); rebuild it"
        )
    if top >= manifest.vocab_size:
        raise IntegrityError(f"shard {name}: token id {top} >= vocab_size {manifest.vocab_size}")
    found = np.concatenate(boundary_tokens) if boundary_tokens else np.empty(0, TOKEN_DTYPE)
    bad = np.flatnonzero(found != manifest.eos_id)
    if len(found) != len(ends) or len(bad):
        doc = int(bad[0]) if len(bad) else len(found)
        raise IntegrityError(
            f"shard {name}: document {doc} does not end with the end-of-text "
            f"id {manifest.eos_id} (index and data disagree)"
        )


def _read_offsets(manifest: Manifest, shard: ShardInfo) -> np.ndarray:
    idx = manifest.idx_uri(shard)
    raw = storage.read_bytes(idx)
    if len(raw) != shard.num_docs * OFFSET_DTYPE.itemsize:
        raise IntegrityError(f"index {idx}: {len(raw)} bytes for {shard.num_docs} documents")
    ends = np.frombuffer(raw, dtype=OFFSET_DTYPE).astype(np.int64)
    if len(ends) == 0:
        raise IntegrityError(f"index {idx}: no documents")
    if ends[0] <= 0 or np.any(np.diff(ends) <= 0):
        raise IntegrityError(f"index {idx}: offsets are not strictly increasing")
    if ends[-1] != shard.num_tokens:
        raise IntegrityError(
            f"index {idx}: last offset {ends[-1]} != num_tokens {shard.num_tokens}"
        )
    return ends
