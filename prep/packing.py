"""Step 2 of a shard build: tokenized partitions into shards of at most `shard_tokens` tokens.

The partitions are concatenated in partition order; a shard takes whole documents while they
fit (a document is never split; one longer than `shard_tokens` gets a shard of its own). Shard
boundaries depend only on document lengths, so the shards are byte-identical whatever the
worker count or the order in which partitions finished. Each shard is independent of the
others once planned: `pack_shard` writes one (uploaded and SHA-256 verified on S3), its marker
last, so shards pack in parallel and a rerun skips the finished ones.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from smelt import storage
from smelt.prep.shard_format import OFFSET_DTYPE, TOKEN_DTYPE, ShardInfo
from smelt.prep.shard_plan import BuildPlan
from smelt.storage.stage import Marker, fingerprint, run_once

log = logging.getLogger(__name__)

COPY_TOKENS = 1 << 22  # bound on tokens held in memory while packing (16 MiB)


@dataclass(frozen=True)
class Piece:
    """Documents of one partition's split covering tokens [start, end), `docs` of them."""

    part: int
    start: int
    end: int
    docs: int


def plan_pieces(plan: BuildPlan, split: str, parts: list[dict[str, Any]]) -> list[list[Piece]]:
    """The shards of one split (as pieces of partitions), from the partitions' end offsets."""
    part_ends = {}
    for part in parts:
        if part["splits"][split]["num_docs"]:
            part_ends[part["index"]] = _part_ends(plan, part["index"], split)
    return pack_documents(part_ends, plan.shard_tokens)


def _part_ends(plan: BuildPlan, index: int, split: str) -> np.ndarray:
    raw = storage.read_bytes(plan.layout.part_offsets(index, split))
    return np.frombuffer(raw, dtype=OFFSET_DTYPE).astype(np.int64)


def pack_documents(part_ends: dict[int, np.ndarray], shard_tokens: int) -> list[list[Piece]]:
    """Greedy packing in partition order: a shard takes whole documents while they fit; a
    document longer than `shard_tokens` gets a shard of its own. Depends only on lengths."""
    shards: list[list[Piece]] = []
    current: list[Piece] = []
    filled = 0
    for index in sorted(part_ends):
        ends = part_ends[index]
        doc, prev_end = 0, 0
        while doc < len(ends):
            # documents of this partition that still fit (at least one when the shard is empty)
            last = int(np.searchsorted(ends, prev_end + shard_tokens - filled, side="right"))
            if last <= doc:
                if filled:
                    shards.append(current)
                    current, filled = [], 0
                    continue
                last = doc + 1
            end_tok = int(ends[last - 1])
            current.append(Piece(index, prev_end, end_tok, last - doc))
            filled += end_tok - prev_end
            doc, prev_end = last, end_tok
            if filled >= shard_tokens:
                shards.append(current)
                current, filled = [], 0
    if current:
        shards.append(current)
    return shards


def shard_marker(plan: BuildPlan, split: str, number: int, pieces: list[Piece]) -> Marker:
    """A shard's marker: valid while its pieces and the partitions they come from are."""
    key = fingerprint(plan.source_fingerprint, split, [asdict(p) for p in pieces])
    return Marker(plan.layout.shard_marker(split, number), key)


def pack_shard(plan: BuildPlan, split: str, number: int, pieces: list[Piece]) -> dict[str, Any]:
    """Write shard `number` of `split` from its pieces (skipped when done); its manifest entry."""
    record = run_once(
        shard_marker(plan, split, number, pieces),
        lambda: {"shard": asdict(_write_shard(plan, split, number, pieces))},
    )
    return record["shard"]


def _write_shard(plan: BuildPlan, split: str, number: int, pieces: list[Piece]) -> ShardInfo:
    layout = plan.layout
    path = layout.shard_path(split, number)
    digest, offsets, total = hashlib.sha256(), [], 0
    with storage.atomic_local_path(layout.uri(path)) as tmp, open(tmp, "wb") as out:
        for piece in pieces:
            part_bin = layout.part_tokens(piece.part, split)
            for lo in range(piece.start, piece.end, COPY_TOKENS):
                hi = min(piece.end, lo + COPY_TOKENS)
                data = storage.read_range(
                    part_bin, lo * TOKEN_DTYPE.itemsize, hi * TOKEN_DTYPE.itemsize
                )
                out.write(data)
                digest.update(data)
            part_ends = _part_ends(plan, piece.part, split)
            inside = (part_ends > piece.start) & (part_ends <= piece.end)
            offsets.append(part_ends[inside] - piece.start + total)
            total += piece.end - piece.start
        out.flush()
    ends = np.concatenate(offsets).astype(OFFSET_DTYPE)
    storage.write_bytes(layout.uri(layout.idx_path(path)), ends.tobytes())
    log.info("wrote %s: %d tokens, %d docs", path, total, len(ends))
    return ShardInfo(
        split=split,
        path=path,
        num_tokens=total,
        num_docs=len(ends),
        bytes=total * TOKEN_DTYPE.itemsize,
        sha256=digest.hexdigest(),
    )


def remove_stale(plan: BuildPlan, split: str, count: int) -> None:
    """Shards of an earlier build with more shards would confuse a reader of the directory."""
    layout = plan.layout
    split_uri = layout.split_dir(split)
    if not storage.exists(split_uri):
        return
    keep = {layout.shard_path(split, n) for n in range(count)}
    keep |= {layout.idx_path(path) for path in keep}
    keep_names = {storage.basename(path) for path in keep}
    for uri in storage.list_files(split_uri):
        if storage.basename(uri) not in keep_names:
            storage.delete(uri)
