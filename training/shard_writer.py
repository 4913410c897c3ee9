"""Tokenize a corpus into uint32 train/val shards: deterministic, resumable, verified uploads.

Three steps, each safe to rerun:

1. `tokenize_partition` (one per corpus partition, in parallel): every non-empty document
   becomes its token ids + the end-of-text id, routed to train or val by a stable hash of its
   id, and written to `OUTPUT/_work/parts/part-NNNNN.{train,val}.{bin,idx}`; a `.done` marker
   written after them makes a rerun skip the partition.
2. `pack_shards`: concatenates the partitions in partition order into shards of at most
   `shard_tokens` tokens (a document is never split; one longer than that gets a shard of its
   own). Shard boundaries depend only on document lengths, so the result is byte-identical
   whatever the worker count or finishing order. Each shard is uploaded (multipart + SHA-256
   verified on S3) and then marked done.
3. `finish_build`: `build_report.json`, then `manifest.json` last, then the work files go.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from itertools import chain

import numpy as np

from smelt import storage
from smelt.errors import ConfigError
from smelt.training import shard_format as fmt
from smelt.training.tokenizer import (
    EOS,
    corpus_partitions,
    id_fraction,
    iter_documents,
    tokenizer_file_uri,
)
from smelt.training.tokenizer import load_tokenizer as _load_tokenizer

log = logging.getLogger(__name__)

DEFAULT_SHARD_TOKENS = 100_000_000
ENCODE_BATCH_DOCS = 512
COPY_TOKENS = 1 << 22  # bound on tokens held in memory while packing (16 MiB)
_TOKENIZERS: dict[str, object] = {}


@dataclass(frozen=True)
class BuildPlan:
    """Everything a build step needs, small and picklable (it travels to task workers)."""

    corpus_uri: str
    tokenizer_uri: str
    output_uri: str
    partitions: tuple[str, ...]
    val_fraction: float
    shard_tokens: int
    tokenizer_sha256: str
    vocab_size: int
    eos_id: int
    corpus_sha256: str = ""  # stats.json + partition sizes: a rebuilt corpus is not "done"

    @property
    def work_uri(self) -> str:
        return storage.join(self.output_uri, "_work")

    def part_uri(self, index: int, suffix: str) -> str:
        return storage.join(self.work_uri, "parts", f"part-{index:05d}{suffix}")

    @property
    def fingerprint(self) -> str:
        """Identity of a build's inputs: markers from another fingerprint are not reused."""
        key = {
            "partitions": [storage.basename(p) for p in self.partitions],
            "val_fraction": self.val_fraction,
            "tokenizer_sha256": self.tokenizer_sha256,
            "corpus_sha256": self.corpus_sha256,
        }
        return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


def plan_build(
    corpus_uri: str,
    tokenizer_uri: str,
    output_uri: str,
    val_fraction: float = 0.01,
    shard_tokens: int = DEFAULT_SHARD_TOKENS,
) -> BuildPlan:
    """Validate inputs and parameters up front (clear errors before any work) and plan."""
    if not 0.0 <= val_fraction < 1.0:
        raise ConfigError(f"--val-fraction {val_fraction} must be in [0, 1)")
    if shard_tokens < 1:
        raise ConfigError(f"--shard-tokens {shard_tokens} must be positive")
    partitions = tuple(corpus_partitions(corpus_uri))
    tokenizer = _load_tokenizer(tokenizer_uri)
    plan = BuildPlan(
        corpus_uri=storage.normalize(corpus_uri),
        tokenizer_uri=storage.normalize(tokenizer_uri),
        output_uri=storage.normalize(output_uri),
        partitions=partitions,
        val_fraction=val_fraction,
        shard_tokens=shard_tokens,
        tokenizer_sha256=storage.sha256_bytes(
            storage.read_bytes(tokenizer_file_uri(tokenizer_uri))
        ),
        vocab_size=tokenizer.get_vocab_size(with_added_tokens=True),
        eos_id=tokenizer.token_to_id(EOS),
        corpus_sha256=_corpus_identity(corpus_uri, partitions),
    )
    _TOKENIZERS[_tokenizer_key(plan)] = tokenizer  # the tasks in this process reuse it
    return plan


def _corpus_identity(corpus_uri: str, partitions: tuple[str, ...]) -> str:
    stats = storage.read_bytes(storage.join(corpus_uri, "stats.json"))
    sizes = [[storage.basename(p), storage.size(p)] for p in partitions]
    return storage.sha256_bytes(stats + json.dumps(sizes).encode())


def _tokenizer_key(plan: BuildPlan) -> str:
    return f"{plan.tokenizer_uri}#{plan.tokenizer_sha256}"


def _tokenizer(plan: BuildPlan):  # noqa: ANN202 - tokenizers.Tokenizer, memoized per process
    key = _tokenizer_key(plan)
    if key not in _TOKENIZERS:
        _TOKENIZERS[key] = _load_tokenizer(plan.tokenizer_uri)
    return _TOKENIZERS[key]


# -- step 1: one partition ----------------------------------------------------------------------


def tokenize_partition(plan: BuildPlan, index: int) -> dict:
    """Tokenize partition `index` into its train/val intermediates; skip it when already done."""
    done_uri = plan.part_uri(index, ".done")
    previous = _read_marker(done_uri, plan.fingerprint)
    if previous is not None:
        log.info("partition %d already tokenized, skipping", index)
        return previous
    tokenizer = _tokenizer(plan)
    counts = {"docs": 0, "empty": 0}
    with contextlib.ExitStack() as stack:
        sinks = {split: _SplitSink(stack, plan, index, split) for split in fmt.SPLITS}
        for batch in _batches(iter_documents(plan.partitions[index]), ENCODE_BATCH_DOCS):
            routed: dict[str, list[str]] = {split: [] for split in fmt.SPLITS}
            for doc_id, text in batch:
                if not text or not text.strip():
                    counts["empty"] += 1
                    continue
                split = "val" if id_fraction(doc_id) < plan.val_fraction else "train"
                routed[split].append(text)
                counts["docs"] += 1
            for split, texts in routed.items():
                if texts:
                    sinks[split].append(encode_documents(tokenizer, texts, plan.eos_id))
        result = {
            "index": index,
            "partition": plan.partitions[index],
            "fingerprint": plan.fingerprint,
            **counts,
            "splits": {split: sink.close() for split, sink in sinks.items()},
        }
    storage.write_text(done_uri, json.dumps(result, indent=2))
    return result


def encode_documents(tokenizer, texts: list[str], eos_id: int) -> tuple[np.ndarray, np.ndarray]:  # noqa: ANN001
    """(tokens, doc lengths incl. eos) of a batch: each document's ids followed by eos.

    A literal end-of-text string inside a document is encoded as plain text, so the eos id
    only ever marks a document boundary.
    """
    encodings = tokenizer.encode_batch_fast(texts, add_special_tokens=False)
    id_lists = [e.ids for e in encodings]
    for i, text in enumerate(texts):
        if EOS in text:
            id_lists[i] = _encode_literal_eos(tokenizer, text)
    lengths = np.fromiter((len(ids) for ids in id_lists), dtype=np.int64, count=len(id_lists))
    flat = np.fromiter(
        chain.from_iterable(id_lists), dtype=fmt.TOKEN_DTYPE, count=int(lengths.sum())
    )
    tokens = np.insert(flat, np.cumsum(lengths), eos_id).astype(fmt.TOKEN_DTYPE, copy=False)
    return tokens, lengths + 1


def _encode_literal_eos(tokenizer, text: str) -> list[int]:  # noqa: ANN001
    literal = (
        tokenizer.encode(EOS[:2], add_special_tokens=False).ids
        + tokenizer.encode(EOS[2:], add_special_tokens=False).ids
    )
    ids: list[int] = []
    for n, piece in enumerate(text.split(EOS)):
        if n:
            ids.extend(literal)
        ids.extend(tokenizer.encode(piece, add_special_tokens=False).ids)
    return ids


class _SplitSink:
    """Appends one split's tokens and end offsets to local temp files moved into place on exit."""

    def __init__(
        self, stack: contextlib.ExitStack, plan: BuildPlan, index: int, split: str
    ) -> None:
        bin_path = stack.enter_context(
            storage.atomic_local_path(plan.part_uri(index, f".{split}.bin"))
        )
        idx_path = stack.enter_context(
            storage.atomic_local_path(plan.part_uri(index, f".{split}.idx"))
        )
        self.bin = stack.enter_context(open(bin_path, "wb"))  # noqa: SIM115 - closed by stack
        self.idx = stack.enter_context(open(idx_path, "wb"))  # noqa: SIM115
        self.digest, self.num_tokens, self.num_docs = hashlib.sha256(), 0, 0

    def append(self, encoded: tuple[np.ndarray, np.ndarray]) -> None:
        tokens, lengths = encoded
        data = tokens.tobytes()
        self.bin.write(data)
        self.digest.update(data)
        self.idx.write((self.num_tokens + np.cumsum(lengths)).astype(fmt.OFFSET_DTYPE).tobytes())
        self.num_tokens += len(tokens)
        self.num_docs += len(lengths)

    def close(self) -> dict:
        self.bin.close()
        self.idx.close()
        return {
            "num_tokens": self.num_tokens,
            "num_docs": self.num_docs,
            "sha256": self.digest.hexdigest(),
        }


def _batches(items: Iterable, size: int) -> Iterable[list]:
    batch: list = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _read_marker(uri: str, fingerprint: str) -> dict | None:
    if not storage.exists(uri):
        return None
    try:
        marker = json.loads(storage.read_text(uri))
    except json.JSONDecodeError:
        return None
    return marker if marker.get("fingerprint") == fingerprint else None


# -- step 2: shards -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Piece:
    """Documents [first_doc, end_doc) of one partition's split, as token range [start, end)."""

    part: int
    start: int
    end: int
    docs: int


def plan_shards(plan: BuildPlan, split: str, parts: list[dict]) -> list[list[Piece]]:
    """The shards of one split, from the partitions' document end offsets."""
    part_ends = {}
    for part in parts:
        if part["splits"][split]["num_docs"]:
            raw = storage.read_bytes(plan.part_uri(part["index"], f".{split}.idx"))
            part_ends[part["index"]] = np.frombuffer(raw, dtype=fmt.OFFSET_DTYPE).astype(np.int64)
    return pack_documents(part_ends, plan.shard_tokens)


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


def pack_shards(plan: BuildPlan, parts: list[dict]) -> list[fmt.ShardInfo]:
    """Write every planned shard not already done; returns all shards in manifest order."""
    parts = sorted(parts, key=lambda p: p["index"])
    result: list[fmt.ShardInfo] = []
    for split in fmt.SPLITS:
        planned = plan_shards(plan, split, parts)
        for number, pieces in enumerate(planned):
            result.append(_pack_one(plan, split, number, pieces))
        _remove_stale(plan, split, len(planned))
    return result


def _pack_one(plan: BuildPlan, split: str, number: int, pieces: list[Piece]) -> fmt.ShardInfo:
    rel = fmt.shard_path(split, number)
    key = json.dumps([plan.fingerprint, [asdict(p) for p in pieces]])
    marker_uri = storage.join(plan.work_uri, "shards", f"{split}_{number:05d}.done")
    fingerprint = hashlib.sha256(key.encode()).hexdigest()
    previous = _read_marker(marker_uri, fingerprint)
    if previous is not None and storage.exists(storage.join(plan.output_uri, rel)):
        return fmt.ShardInfo(**previous["shard"])
    storage.delete(fmt.manifest_uri(plan.output_uri))  # the dataset is changing: not finished
    digest, offsets, total = hashlib.sha256(), [], 0
    bin_uri = storage.join(plan.output_uri, rel)
    with storage.atomic_local_path(bin_uri) as tmp, open(tmp, "wb") as out:
        for piece in pieces:
            part_bin = plan.part_uri(piece.part, f".{split}.bin")
            for lo in range(piece.start, piece.end, COPY_TOKENS):
                hi = min(piece.end, lo + COPY_TOKENS)
                data = storage.read_range(part_bin, lo * 4, hi * 4)
                out.write(data)
                digest.update(data)
            part_ends = np.frombuffer(
                storage.read_bytes(plan.part_uri(piece.part, f".{split}.idx")),
                dtype=fmt.OFFSET_DTYPE,
            ).astype(np.int64)
            mask = (part_ends > piece.start) & (part_ends <= piece.end)
            offsets.append(part_ends[mask] - piece.start + total)
            total += piece.end - piece.start
        out.flush()
    ends = np.concatenate(offsets).astype(fmt.OFFSET_DTYPE)
    storage.write_bytes(storage.join(plan.output_uri, rel[: -len(".bin")] + ".idx"), ends.tobytes())
    shard = fmt.ShardInfo(
        split=split,
        path=rel,
        num_tokens=total,
        num_docs=len(ends),
        bytes=total * fmt.TOKEN_DTYPE.itemsize,
        sha256=digest.hexdigest(),
    )
    storage.write_text(marker_uri, json.dumps({"fingerprint": fingerprint, "shard": asdict(shard)}))
    log.info("wrote %s: %d tokens, %d docs", rel, total, len(ends))
    return shard


def _remove_stale(plan: BuildPlan, split: str, count: int) -> None:
    """Shards of an earlier build with more shards would confuse a reader of the directory."""
    split_uri = storage.join(plan.output_uri, split)
    if not storage.exists(split_uri):
        return
    keep = {
        storage.basename(storage.join(plan.output_uri, fmt.shard_path(split, n)))
        for n in range(count)
    }
    keep |= {name[: -len(".bin")] + ".idx" for name in keep}
    for uri in storage.list_files(split_uri):
        if storage.basename(uri) not in keep:
            storage.delete(uri)


# -- step 3: manifest ---------------------------------------------------------------------------


def finish_build(
    plan: BuildPlan, parts: list[dict], shards: list[fmt.ShardInfo], keep_work: bool = False
) -> fmt.Manifest:
    """Write the build report, then the manifest (last), then drop the work files."""
    manifest = fmt.Manifest(
        plan.vocab_size, plan.eos_id, plan.tokenizer_sha256, tuple(shards), root=plan.output_uri
    )
    report: dict = {
        "corpus": plan.corpus_uri,
        "tokenizer": plan.tokenizer_uri,
        "partitions": len(plan.partitions),
        "val_fraction": plan.val_fraction,
        "shard_tokens": plan.shard_tokens,
        "shards": len(shards),
        "docs": sum(p["docs"] for p in parts),
        "empty_docs_skipped": sum(p["empty"] for p in parts),
    }
    for split in fmt.SPLITS:
        report[f"{split}_docs"] = sum(p["splits"][split]["num_docs"] for p in parts)
        report[f"{split}_tokens"] = sum(p["splits"][split]["num_tokens"] for p in parts)
    storage.write_text(
        storage.join(plan.output_uri, fmt.BUILD_REPORT_NAME), json.dumps(report, indent=2) + "\n"
    )
    storage.write_text(fmt.manifest_uri(plan.output_uri), manifest.to_json())
    if not keep_work:
        storage.delete(plan.work_uri, recursive=True)
    return manifest


def build_shards(
    corpus_uri: str,
    tokenizer_uri: str,
    output_uri: str,
    val_fraction: float = 0.01,
    shard_tokens: int = DEFAULT_SHARD_TOKENS,
    workers: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> fmt.Manifest:
    """The whole build without an orchestrator (the `shards-build` flow runs the same steps)."""
    plan = plan_build(corpus_uri, tokenizer_uri, output_uri, val_fraction, shard_tokens)
    indices = range(len(plan.partitions))
    parts: list[dict] = []
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            for part in pool.map(tokenize_partition, [plan] * len(indices), indices):
                parts.append(part)
                if progress:
                    progress(len(parts), len(indices))
    else:
        for index in indices:
            parts.append(tokenize_partition(plan, index))
            if progress:
                progress(len(parts), len(indices))
    return finish_build(plan, parts, pack_shards(plan, parts))
