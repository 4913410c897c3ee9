"""Near-dedup follows the S-curve README quotes, Jaccard level by Jaccard level.

For each level, hundreds of planted pairs with that exact word 5-gram Jaccard go through every
dedup stage; the share removed must be what 20 bands x 8 rows with verification at 0.7 give
(`candidate_probability` x `verification_probability`, the table in corpus/dedup/minhash.py:
0.974 at 0.8, 0.37 at 0.7, ~0 at 0.5), within the binomial spread of that many pairs (a
0.1% tail each side). One combined rate over several levels hides a change at one of them:
with 12 bands instead of 20, J = 0.8 pairs are caught with p = 0.89, below this test's bound.
"""

from __future__ import annotations

import math

import pyarrow.parquet as pq

from smelt.corpus.config import DedupConfig
from smelt.corpus.dedup.minhash import candidate_probability, verification_probability
from smelt.corpus.dedup.plan import deduplicate
from tests.dedup.conftest import NGRAM, near_copy, write_partition

LEVELS = {0.5: 100, 0.6: 100, 0.7: 200, 0.8: 400, 0.85: 200, 0.9: 100, 0.95: 100}  # J: pairs
WORDS = 200
TAIL = 1e-3


def shingles(words: list[str]) -> set[tuple[str, ...]]:
    return {tuple(words[i : i + NGRAM]) for i in range(len(words) - NGRAM + 1)}


def jaccard(a: list[str], b: list[str]) -> float:
    left, right = shingles(a), shingles(b)
    return len(left & right) / len(left | right)


def removal_probability(similarity: float, config: DedupConfig) -> float:
    """P(one of a pair is removed): it must become a candidate and then pass verification."""
    num_perm = config.num_bands * config.rows_per_band
    return candidate_probability(
        similarity, config.num_bands, config.rows_per_band
    ) * verification_probability(similarity, num_perm, config.jaccard_threshold)


def binomial_bounds(n: int, p: float, tail: float = TAIL) -> tuple[int, int]:
    """The smallest and largest counts of Binomial(n, p) outside a `tail` on either side."""

    def pmf(k: int) -> float:
        if p <= 0.0 or p >= 1.0:
            return float(k == (n if p >= 1.0 else 0))
        log = math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
        return math.exp(log + k * math.log(p) + (n - k) * math.log1p(-p))

    probabilities = [pmf(k) for k in range(n + 1)]
    low, below = 0, 0.0
    while below + probabilities[low] <= tail:
        below += probabilities[low]
        low += 1
    high, above = n, 0.0
    while above + probabilities[high] <= tail:
        above += probabilities[high]
        high -= 1
    return low, high


def test_removed_share_follows_the_s_curve_at_each_jaccard_level(tmp_path, vocab):
    config = DedupConfig()
    rows, pairs = [], {level: [] for level in LEVELS}
    for level, count in LEVELS.items():
        for index in range(count):
            base = vocab.words(WORDS)
            copy = near_copy(base, level, vocab)
            a, b = f"j{level}-{index:04d}a", f"j{level}-{index:04d}b"
            rows += [(a, " ".join(base)), (b, " ".join(copy))]
            pairs[level].append((a, b, jaccard(base, copy)))
    parts = [
        write_partition(tmp_path / "extracted" / f"part-{i:05d}.parquet", rows[i::4])
        for i in range(4)
    ]
    uris = deduplicate(parts, str(tmp_path / "work"), str(tmp_path / "out"), config)
    removed = {
        row["id"]: row["kind"] for uri in uris if uri for row in pq.read_table(uri).to_pylist()
    }
    assert set(removed.values()) <= {"near"}

    report, outside = [], []
    for level, planted in pairs.items():
        similarities = [s for _, _, s in planted]
        assert max(abs(s - level) for s in similarities) < 0.01, "planted Jaccard is off"
        expected = sum(removal_probability(s, config) for s in similarities) / len(planted)
        caught = sum((a in removed) != (b in removed) for a, b, _ in planted)
        both = sum(a in removed and b in removed for a, b, _ in planted)
        low, high = binomial_bounds(len(planted), expected)
        report.append(f"J={level}: {caught}/{len(planted)} caught, expected {expected:.4f}")
        assert both == 0, f"J={level}: both documents of {both} pairs removed"
        if not low <= caught <= high:
            outside.append(f"J={level}: {caught} not in [{low}, {high}]")
    assert not outside, "; ".join(outside) + "\n" + "\n".join(report)


def test_the_bounds_reject_twelve_bands_at_jaccard_0_8():
    """The power of the check above: with 8 of 20 bands gone, the J = 0.8 count lands 3
    standard deviations below the lowest count the full banding accepts."""
    n = LEVELS[0.8]
    low, _ = binomial_bounds(n, removal_probability(0.8, DedupConfig()))
    fewer = removal_probability(0.8, DedupConfig(num_bands=12))
    assert n * fewer + 3 * math.sqrt(n * fewer * (1 - fewer)) < low
