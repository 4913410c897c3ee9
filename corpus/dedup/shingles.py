"""Word n-gram shingles as 64-bit hashes, computed a batch of documents at a time.

Near-duplicate detection compares documents as *sets of word n-grams* of a simplified text
(lowercase, punctuation removed, digits folded to 0, whitespace collapsed: the same
simplification datatrove applies before MinHash), so that markup or formatting noise does not
hide a copy.

Speed matters here: building n-gram strings in Python caps MinHash at a few thousand documents
per second. Instead each *word* is hashed once (rensa's Rust hasher, deterministic across
processes and machines) and the n-grams are combined from the word hashes with vectorized
uint64 arithmetic in numpy. The result is one flat array of shingle hashes for the whole batch
plus row offsets, which is the input rensa's bulk MinHash takes without any per-document
Python objects.
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections.abc import Sequence

import numpy as np
import rensa


def _non_ascii_separators() -> re.Pattern[str]:
    """Non-ASCII punctuation, symbols, separators and controls of the BMP, as one class."""
    chars = "".join(
        chr(code)
        for code in range(128, 0x10000)
        if not 0xD800 <= code < 0xE000 and unicodedata.category(chr(code))[0] in "PZCS"
    )
    return re.compile("[" + re.escape(chars) + "]+")


_NON_ASCII_SEPARATORS = _non_ascii_separators()
_ASCII_TABLE = bytearray(range(256))
for _char in string.punctuation + "".join(map(chr, [*range(32), 127])):
    if not _char.isspace():
        _ASCII_TABLE[ord(_char)] = ord(" ")
for _char in string.digits:
    _ASCII_TABLE[ord(_char)] = ord("0")
_ASCII_TABLE = bytes(_ASCII_TABLE)
# Odd 64-bit multipliers (from splitmix64 / FNV): the combination is a position-aware hash.
_MULTIPLIERS = np.array(
    [
        0x9E3779B97F4A7C15,
        0xBF58476D1CE4E5B9,
        0x94D049BB133111EB,
        0x100000001B3,
        0xD6E8FEB86659FD93,
        0xFF51AFD7ED558CCD,
        0xC4CEB9FE1A85EC53,
        0x2545F4914F6CDD1D,
    ],
    dtype=np.uint64,
)


def simple_words(text: str) -> list[bytes]:
    """Words of the simplified text, as UTF-8 bytes.

    Lowercase; ASCII punctuation and controls and non-ASCII punctuation, symbols and
    separators become spaces; ASCII digits fold to 0; split on whitespace. Done on bytes with
    one `bytes.translate` (non-ASCII text first takes one regex pass): about 7x quicker than
    a `\\w` regex. rensa hashes a str token and its UTF-8 bytes identically.
    """
    lowered = text.lower()
    if not lowered.isascii():
        lowered = _NON_ASCII_SEPARATORS.sub(" ", lowered)
    return lowered.encode("utf-8").translate(_ASCII_TABLE).split()


def simplify(text: str) -> str:
    """The simplified text that shingles are taken from (for inspection and tests)."""
    return " ".join(word.decode("utf-8") for word in simple_words(text))


def mix64(values: np.ndarray) -> np.ndarray:
    """splitmix64 finalizer: spreads any uint64 input uniformly over 64 bits (vectorized)."""
    z = values.astype(np.uint64, copy=True)
    z ^= z >> np.uint64(30)
    z *= np.uint64(0xBF58476D1CE4E5B9)
    z ^= z >> np.uint64(27)
    z *= np.uint64(0x94D049BB133111EB)
    z ^= z >> np.uint64(31)
    return z


def ngram_hashes(
    word_hashes: np.ndarray, word_offsets: np.ndarray, ngram: int
) -> tuple[np.ndarray, np.ndarray]:
    """Hashes of all word n-grams of a batch of documents, from their flat word hashes.

    Document i's words are `word_hashes[word_offsets[i]:word_offsets[i + 1]]`. Returns the flat
    shingle hashes and their offsets. A document shorter than `ngram` words yields one shingle
    for all its words (so short documents still compare); an empty one yields none.
    """
    if not 1 <= ngram <= len(_MULTIPLIERS):
        raise ValueError(f"ngram must be in 1..{len(_MULTIPLIERS)}, got {ngram}")
    total = len(word_hashes)
    counts = np.diff(word_offsets).astype(np.int64)
    starts = word_offsets[:-1].astype(np.int64)
    padded = np.concatenate([word_hashes, np.zeros(ngram - 1, dtype=np.uint64)])
    combined = padded[:total] * _MULTIPLIERS[0]
    for offset in range(1, ngram):
        combined ^= padded[offset : offset + total] * _MULTIPLIERS[offset]
    doc_of_word = np.repeat(np.arange(len(counts)), counts)
    position = np.arange(total)
    ends = (starts + counts)[doc_of_word]
    short = counts[doc_of_word] < ngram
    keep = np.where(short, position == starts[doc_of_word], position + ngram <= ends)
    for doc in np.flatnonzero((counts > 0) & (counts < ngram)):  # rare: recombine in place
        words = word_hashes[starts[doc] : starts[doc] + counts[doc]]
        value = np.bitwise_xor.reduce(words * _MULTIPLIERS[: len(words)])
        combined[starts[doc]] = value
    per_doc = np.where(counts >= ngram, counts - ngram + 1, np.minimum(counts, 1))
    offsets = np.zeros(len(counts) + 1, dtype=np.uint64)
    np.cumsum(per_doc, out=offsets[1:])
    return mix64(combined[keep]), offsets


def shingle_batch(texts: Sequence[str], ngram: int) -> tuple[np.ndarray, np.ndarray]:
    """Flat uint64 shingle hashes of all `texts` and their row offsets (len(texts) + 1).

    Shingles of document i are `flat[offsets[i]:offsets[i + 1]]` (duplicates included:
    MinHash is a set sketch, a repeated shingle does not change it).
    """
    words = [simple_words(text) for text in texts]
    counts = np.fromiter((len(doc) for doc in words), dtype=np.uint64, count=len(words))
    word_offsets = np.zeros(len(words) + 1, dtype=np.uint64)
    np.cumsum(counts, out=word_offsets[1:])
    flat_words = [word for doc in words for word in doc]
    word_hashes = np.array(rensa.RMinHash.hash_token_sets([flat_words])[0], dtype=np.uint64)
    return ngram_hashes(word_hashes, word_offsets, ngram)
