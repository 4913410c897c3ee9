"""Gopher repetition rules (Rae et al. 2021, table A1).

Semantics follow datatrove's GopherRepetitionFilter: duplicate paragraphs (split on blank
lines) and lines (split on newlines), by count and by characters; the most frequent 2-4-gram's
character share (words joined by spaces); and the share of characters in duplicated 5-10-grams,
counted greedily left to right (a repeated n-gram's characters count once and the scan jumps
past it; characters exclude the spaces between words). All fractions divide by the text length.

N-grams are never built as strings or tuples: each word is hashed once, an n-gram's key is a
rolling 64-bit hash over its words (numpy arrays, extended from n-1 to n in one vector
operation), and occurrences are counted with one sort per size. The greedy duplicate scan
visits only positions whose n-gram repeats; when none repeats, longer sizes are skipped.

Reasons (prefixed `gopher_repetition:`): dup_para_frac, dup_para_char_frac, dup_line_frac,
dup_line_char_frac, top_{n}_gram, dup_{n}_gram.
"""

from __future__ import annotations

from itertools import accumulate

import numpy as np

from smelt.corpus.config import GopherRepetitionConfig
from smelt.corpus.filters.base import DocumentFilter
from smelt.corpus.filters.text_utils import (
    LINE_SPLIT_RE,
    PARAGRAPH_SPLIT_RE,
    TextView,
    find_duplicates,
)

# Odd 64-bit multiplier of the rolling n-gram hash (the golden-ratio constant).
_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)


def word_hashes(words: list[str]) -> np.ndarray:
    """One 64-bit hash per word (Python's string hash, computed once per string and cached)."""
    return np.fromiter(map(hash, words), dtype=np.int64, count=len(words)).view(np.uint64)


def extend_keys(keys: np.ndarray, hashes: np.ndarray, n: int) -> np.ndarray:
    """Keys of the n-grams from the keys of the (n-1)-grams: k_n[i] = k_{n-1}[i] * M + h[i+n-1]."""
    with np.errstate(over="ignore"):
        return keys[:-1] * _MULTIPLIER + hashes[n - 1 :]


def occurrences(keys: np.ndarray) -> np.ndarray:
    """For each position, how many times its n-gram occurs in the text."""
    _, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
    return counts[inverse.reshape(-1)]


def top_ngram_chars(counts: np.ndarray, prefix: list[int], n: int) -> int:
    """Characters covered by the most frequent n-gram: len(" ".join(gram)) * count.

    Ties go to the n-gram that occurs first, as with `Counter.most_common(1)`.
    """
    first = int(np.argmax(counts))
    return (prefix[first + n] - prefix[first] + n - 1) * int(counts[first])


def duplicated_ngram_chars(keys: np.ndarray, counts: np.ndarray, prefix: list[int], n: int) -> int:
    """Characters in repeated n-grams, scanning left to right and jumping past each repeat.

    Only positions whose n-gram occurs more than once are visited: an n-gram seen once can
    never be a repeat, so skipping it changes neither the count nor where the scan jumps.
    """
    positions = np.flatnonzero(counts > 1)
    seen: set[int] = set()
    repeated = next_free = 0
    for index, key in zip(positions.tolist(), keys[positions].tolist(), strict=True):
        if index < next_free:
            continue  # inside a repeat already counted
        if key in seen:
            repeated += prefix[index + n] - prefix[index]
            next_free = index + n
        else:
            seen.add(key)
            next_free = index + 1
    return repeated


class GopherRepetition(DocumentFilter):
    """Document-level repetition rules."""

    name = "gopher_repetition"

    def __init__(self, config: GopherRepetitionConfig, max_words: int = 0) -> None:
        self.config = config
        # > 0: skip the n-gram rules for texts with more word tokens than that. The caller
        # passes the Gopher quality word limit, which rejects such texts anyway, so a huge text
        # costs a line split rather than ten passes of n-gram counting.
        self.max_words = max_words

    def check(self, view: TextView) -> str | None:
        """The first rule the text breaks, or None."""
        if not view.text:
            return None
        reason = self._block_rules(view)
        if reason or (self.max_words and view.more_words_than(self.max_words)):
            return reason
        return self._ngram_rules(view)

    def _block_rules(self, view: TextView) -> str | None:
        cfg, text = self.config, view.text
        paragraphs = PARAGRAPH_SPLIT_RE.split(text.strip())
        count, chars = find_duplicates(paragraphs)
        if cfg.dup_para_frac and count / len(paragraphs) > cfg.dup_para_frac:
            return "dup_para_frac"
        if cfg.dup_para_char_frac and chars / len(text) > cfg.dup_para_char_frac:
            return "dup_para_char_frac"
        lines = LINE_SPLIT_RE.split(text)
        count, chars = find_duplicates(lines)
        if cfg.dup_line_frac and count / len(lines) > cfg.dup_line_frac:
            return "dup_line_frac"
        if cfg.dup_line_char_frac and chars / len(text) > cfg.dup_line_char_frac:
            return "dup_line_char_frac"
        return None

    def _ngram_rules(self, view: TextView) -> str | None:
        cfg, words, length = self.config, view.words, len(view.text)
        top = {n: f for n, f in cfg.top_n_grams if len(words) >= n}
        dup = {n: f for n, f in cfg.dup_n_grams if len(words) >= n}
        if not top and not dup:
            return None
        hashes = word_hashes(words)
        prefix = list(accumulate(map(len, words), initial=0))
        keys = hashes
        for n in range(2, max([*top, *dup]) + 1):
            keys = extend_keys(keys, hashes, n)
            if n not in top and n not in dup:
                continue
            counts = occurrences(keys)
            if n in top and top_ngram_chars(counts, prefix, n) / length > top[n]:
                return f"top_{n}_gram"
            if n in dup:
                if int(counts.max()) < 2 and not any(size > n for size in top):
                    return None  # no repeated n-gram, hence no longer one either
                if duplicated_ngram_chars(keys, counts, prefix, n) / length > dup[n]:
                    return f"dup_{n}_gram"
        return None
