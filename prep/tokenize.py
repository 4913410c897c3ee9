"""Step 1 of a shard build: one corpus partition into token intermediates.

Every non-empty, live document (not from a source a later corpus superseded) becomes its token
ids + the end-of-text id, routed to train or val by a stable hash of its id, and appended to the partition's `{split}.bin` / `{split}.idx` in the
build's work directory. The partition's marker follows the files (`smelt.storage.stage`), so a
rerun skips a finished partition and redoes an interrupted one whole.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Iterable, Iterator
from itertools import chain, islice
from typing import Any

import numpy as np

from smelt import storage
from smelt.corpus.tables import iter_rows
from smelt.prep.corpus_input import DOCUMENT_COLUMNS, id_fraction
from smelt.prep.shard_format import OFFSET_DTYPE, SPLITS, TOKEN_DTYPE
from smelt.prep.shard_plan import BuildPlan
from smelt.prep.specials import EOS
from smelt.prep.tokenizer_files import load_tokenizer
from smelt.storage.stage import Marker, fingerprint, run_once

log = logging.getLogger(__name__)

ENCODE_BATCH_DOCS = 512
_TOKENIZERS: dict[str, Any] = {}  # tokenizer checksum -> loaded tokenizer, per process


def partition_marker(plan: BuildPlan, index: int) -> Marker:
    """The marker of partition `index`: valid for this corpus, tokenizer and val fraction."""
    name = storage.basename(plan.partitions[index])
    return Marker(plan.layout.part_marker(index), fingerprint(plan.source_fingerprint, name))


def tokenize_partition(plan: BuildPlan, index: int) -> dict[str, Any]:
    """Tokenize partition `index` into its train/val intermediates; skipped when done.

    Returns the partition's record: document counts and, per split, tokens, documents and the
    SHA-256 of the tokens.
    """
    return run_once(partition_marker(plan, index), lambda: _tokenize(plan, index))


def _tokenize(plan: BuildPlan, index: int) -> dict[str, Any]:
    tokenizer = _tokenizer(plan)
    counts = {"docs": 0, "empty": 0, "superseded": 0}
    superseded = frozenset(plan.corpus.superseded)
    columns = (*DOCUMENT_COLUMNS, "source") if superseded else DOCUMENT_COLUMNS
    with contextlib.ExitStack() as stack:
        sinks = {split: _SplitSink(stack, plan, index, split) for split in SPLITS}
        rows = iter_rows(plan.partitions[index], columns)
        for batch in _batches(rows, ENCODE_BATCH_DOCS):
            routed: dict[str, list[str]] = {split: [] for split in SPLITS}
            for doc_id, text, *source in batch:
                if superseded and source[0] in superseded:
                    counts["superseded"] += 1
                    continue
                if not text or not text.strip():
                    counts["empty"] += 1
                    continue
                split = "val" if id_fraction(doc_id) < plan.val_fraction else "train"
                routed[split].append(text)
                counts["docs"] += 1
            for split, texts in routed.items():
                if texts:
                    sinks[split].append(encode_documents(tokenizer, texts, plan.eos_id))
        splits = {split: sink.close() for split, sink in sinks.items()}
    log.info("tokenized partition %d: %d documents", index, counts["docs"])
    return {"index": index, "partition": plan.partitions[index], **counts, "splits": splits}


def _tokenizer(plan: BuildPlan) -> Any:
    """The plan's tokenizer, loaded once per process (workers tokenize many partitions)."""
    if plan.tokenizer_sha256 not in _TOKENIZERS:
        _TOKENIZERS[plan.tokenizer_sha256] = load_tokenizer(plan.tokenizer_uri)
    return _TOKENIZERS[plan.tokenizer_sha256]


def encode_documents(
    tokenizer: Any, texts: list[str], eos_id: int
) -> tuple[np.ndarray, np.ndarray]:
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
    flat = np.fromiter(chain.from_iterable(id_lists), dtype=TOKEN_DTYPE, count=int(lengths.sum()))
    tokens = np.insert(flat, np.cumsum(lengths), eos_id).astype(TOKEN_DTYPE, copy=False)
    return tokens, lengths + 1


def _encode_literal_eos(tokenizer: Any, text: str) -> list[int]:
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
        layout = plan.layout
        bin_path = stack.enter_context(storage.atomic_local_path(layout.part_tokens(index, split)))
        idx_path = stack.enter_context(storage.atomic_local_path(layout.part_offsets(index, split)))
        self.bin = stack.enter_context(open(bin_path, "wb"))  # noqa: SIM115 - closed by stack
        self.idx = stack.enter_context(open(idx_path, "wb"))  # noqa: SIM115
        self.digest, self.num_tokens, self.num_docs = hashlib.sha256(), 0, 0

    def append(self, encoded: tuple[np.ndarray, np.ndarray]) -> None:
        tokens, lengths = encoded
        data = tokens.tobytes()
        self.bin.write(data)
        self.digest.update(data)
        self.idx.write((self.num_tokens + np.cumsum(lengths)).astype(OFFSET_DTYPE).tobytes())
        self.num_tokens += len(tokens)
        self.num_docs += len(lengths)

    def close(self) -> dict[str, Any]:
        self.bin.close()
        self.idx.close()
        return {
            "num_tokens": self.num_tokens,
            "num_docs": self.num_docs,
            "sha256": self.digest.hexdigest(),
        }


def _batches(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch
