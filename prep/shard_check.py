"""The one integrity check of a shard, and `smelt shards verify` over a whole dataset.

`check_shard` streams one shard in bounded chunks (local or S3) and proves it is what the
manifest says: its size and SHA-256, every id below `vocab_size`, the `.idx` offsets strictly
increasing with the last one equal to `num_tokens`, and the end-of-text id as the last token of
every document. It returns the document end offsets, so a reader need not read them twice.

Users of the check:
- `verify_shards` (`smelt shards verify`): every shard of a dataset, after the manifest's cheap
  listing check (`open_manifest`);
- the data loader, on its first open of a shard in a process (`check_local_shard`, memoized by
  file identity so that many loaders over one dataset pay once).

Every failure raises `IntegrityError` in one form, naming the shard (`shard_format.shard_error`).
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass

import numpy as np

from smelt import storage
from smelt.prep.shard_format import (
    OFFSET_DTYPE,
    TOKEN_DTYPE,
    Manifest,
    ShardInfo,
    open_manifest,
    shard_error,
)

log = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 24  # 16 MiB per read
_CHECKED: set[tuple] = set()  # file identities of shards checked in this process


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
    """Check the dataset at `uri` (root or manifest); raise `IntegrityError` at the first bad shard."""
    manifest = open_manifest(uri, check_files=True)
    for shard in manifest.shards:
        check_shard(
            manifest.shard_uri(shard),
            manifest.idx_uri(shard),
            shard,
            manifest.vocab_size,
            manifest.eos_id,
        )
        log.info("verified %s", shard.path)
    return VerifyReport(
        root=manifest.root,
        shards=len(manifest.shards),
        tokens=manifest.num_tokens(),
        docs=sum(s.num_docs for s in manifest.shards),
        bytes=sum(s.bytes for s in manifest.shards),
    )


def check_local_shard(
    bin_path: str, idx_path: str, shard: ShardInfo, manifest: Manifest, name: str
) -> np.ndarray:
    """`check_shard` of local files, done once per process while the files stay the same.

    The memo key is the identity of both files (path, size, mtime) and the expected checksum:
    a file replaced or touched since is checked again. Returns the document end offsets.
    """
    key = (
        *_identity(bin_path),
        *_identity(idx_path),
        shard.sha256,
        manifest.vocab_size,
        manifest.eos_id,
    )
    if key in _CHECKED:
        return read_offsets(idx_path, shard, name)
    ends = check_shard(bin_path, idx_path, shard, manifest.vocab_size, manifest.eos_id, name)
    _CHECKED.add(key)
    return ends


def _identity(path: str) -> tuple[str, int, int]:
    stat = os.stat(path)
    return path, stat.st_size, stat.st_mtime_ns


def check_shard(
    bin_uri: str,
    idx_uri: str,
    shard: ShardInfo,
    vocab_size: int,
    eos_id: int,
    name: str | None = None,
) -> np.ndarray:
    """All checks of one shard (module docstring); `name` is how errors call it (its URI)."""
    name = name or bin_uri
    found = storage.size(bin_uri)
    if found != shard.bytes:
        raise shard_error(
            name, f"{found} bytes, the manifest expects {shard.bytes} (truncated or replaced)"
        )
    ends = read_offsets(idx_uri, shard, name)
    scan = _Scan(ends)
    with storage.open_read(bin_uri) as fh:
        while chunk := fh.read(CHUNK_BYTES):
            scan.feed(chunk)
    digest = scan.digest.hexdigest()
    if scan.position != shard.num_tokens or scan.tail:
        raise shard_error(
            name, f"read {scan.position} tokens, the manifest lists {shard.num_tokens}"
        )
    if digest != shard.sha256:
        raise shard_error(
            name,
            f"SHA-256 {digest[:16]}… does not match the manifest's {shard.sha256[:16]}… "
            "(corrupted)",
        )
    if scan.top >= vocab_size:
        raise shard_error(name, f"token id {scan.top} >= vocab_size {vocab_size}")
    last_tokens = np.concatenate(scan.last_tokens) if scan.last_tokens else np.empty(0)
    bad = np.flatnonzero(last_tokens != eos_id)
    if len(bad):
        raise shard_error(
            name,
            f"document {int(bad[0])} does not end with the end-of-text id {eos_id} "
            "(its index and data disagree)",
        )
    return ends


class _Scan:
    """Running state of one pass over a shard's bytes: checksum, max id, documents' last tokens."""

    def __init__(self, ends: np.ndarray) -> None:
        self.ends = ends
        self.digest = hashlib.sha256()
        self.position, self.top = 0, -1
        self.tail = b""  # bytes of a token split between two reads
        self.last_tokens: list[np.ndarray] = []

    def feed(self, chunk: bytes) -> None:
        self.digest.update(chunk)
        data = self.tail + chunk
        usable = len(data) - len(data) % TOKEN_DTYPE.itemsize
        self.tail = data[usable:]
        tokens = np.frombuffer(data[:usable], dtype=TOKEN_DTYPE)
        if not len(tokens):
            return
        self.top = max(self.top, int(tokens.max()))
        # documents ending inside these tokens: position < end <= position + len(tokens)
        lo = np.searchsorted(self.ends, self.position, side="right")
        hi = np.searchsorted(self.ends, self.position + len(tokens), side="right")
        self.last_tokens.append(tokens[self.ends[lo:hi] - 1 - self.position])
        self.position += len(tokens)


def read_offsets(idx_uri: str, shard: ShardInfo, name: str) -> np.ndarray:
    """A shard's document end offsets (int64), checked against its manifest entry."""
    raw = storage.read_bytes(idx_uri)
    if len(raw) != shard.num_docs * OFFSET_DTYPE.itemsize:
        raise shard_error(
            name,
            f"its index {storage.basename(idx_uri)} has {len(raw)} bytes for "
            f"{shard.num_docs} documents",
        )
    ends = np.frombuffer(raw, dtype=OFFSET_DTYPE).astype(np.int64)
    if len(ends) == 0:
        raise shard_error(name, "its index lists no documents")
    if ends[0] <= 0 or np.any(np.diff(ends) <= 0):
        raise shard_error(name, "its index offsets are not strictly increasing")
    if ends[-1] != shard.num_tokens:
        raise shard_error(
            name, f"its index ends at token {ends[-1]}, the manifest lists {shard.num_tokens}"
        )
    return ends
