"""Exact-duplicate keys: a 64-bit hash of each document's normalized text.

Stage 1 already normalized the text (Unicode form, whitespace), so two documents are exact
duplicates when their stripped texts are byte-identical. The key takes part in the same
bucket shuffle as the MinHash bands (as band `EXACT_BAND`), so exact dedup runs across the
whole corpus, grouped by hash range, never per partition. A 64-bit collision alone cannot
remove a document: an exact pair is confirmed only when the MinHash signatures agree too.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

EXACT_BAND = -1  # band index of exact-text keys in the bucket files


def exact_key(text: str) -> int:
    """Signed 64-bit BLAKE2b hash of the stripped text."""
    digest = hashlib.blake2b(text.strip().encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little", signed=True)


def exact_keys(texts: Sequence[str]) -> np.ndarray:
    """`exact_key` of each text, as int64."""
    return np.fromiter((exact_key(text) for text in texts), dtype=np.int64, count=len(texts))
