"""Fixtures for dedup: documents with controlled word-shingle Jaccard, written as partitions."""

from __future__ import annotations

import random

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

NGRAM = 5


def shared_prefix_for(jaccard: float, length: int, ngram: int = NGRAM) -> int:
    """Words two `length`-word documents must share (as a prefix, the rest all different) for
    their n-gram shingle sets to have this Jaccard: J = m / (2S - m), S = length - n + 1,
    m = prefix - n + 1 shared shingles."""
    shingles = length - ngram + 1
    shared = round(2 * shingles * jaccard / (1 + jaccard))
    return shared + ngram - 1


class Vocabulary:
    """Random words, so shingles repeat only where a test plants them."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def words(self, count: int) -> list[str]:
        letters = "abcdefghijklmnopqrstuvwxyz"
        return ["".join(self.rng.choices(letters, k=self.rng.randint(4, 9))) for _ in range(count)]


def near_copy(base: list[str], jaccard: float, vocab: Vocabulary) -> list[str]:
    """A document of the same length as `base` with shingle Jaccard `jaccard` to it."""
    prefix = shared_prefix_for(jaccard, len(base))
    return base[:prefix] + vocab.words(len(base) - prefix)


def write_partition(path, rows: list[tuple[str, str]]) -> str:
    """A stage-1 partition (id, text, source, url)."""
    table = pa.table(
        {
            "id": [r[0] for r in rows],
            "text": [r[1] for r in rows],
            "source": ["test"] * len(rows),
            "url": [None] * len(rows),
        },
        schema=pa.schema(
            [
                ("id", pa.string()),
                ("text", pa.string()),
                ("source", pa.string()),
                ("url", pa.string()),
            ]
        ),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    return str(path)


@pytest.fixture
def vocab() -> Vocabulary:
    return Vocabulary(7)
