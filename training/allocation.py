"""Which source each window of a mixture comes from: exact shares, no randomness.

Source i's k-th window (k = 0, 1, ...) is due at (k + u_i) / w_i, and windows are served in order
of due time, ties to the lower source index: a divisor sequence (with u_i = 1/2 for every source
it would be Sainte-Laguë's). The offsets u_i are staggered by the golden ratio (u_i = frac(1/2 +
i * 0.618...)) so that sources of equal weight do not all fall due at once: with one large
source among many small ones (a main corpus and thirty nights) a shared offset would let the
large one run up to w * (K - 1) / 2 windows ahead before the small ones start; staggered, every
source stays within a few windows of its share at every point (within one for two sources,
about K / 3 for K: tests/training/test_allocation.py). The sequence depends only on the weights and on how many windows each
source has had, so a resumed run continues it exactly, and serving n windows at once or in two
calls gives the same sequence.
"""

from __future__ import annotations

import numpy as np

GOLDEN = (5**0.5 - 1) / 2


def offsets(count: int) -> np.ndarray:
    """The due-time offsets u_i of `count` sources, in (0, 1)."""
    return (0.5 + np.arange(count) * GOLDEN) % 1.0


def allocate(weights: np.ndarray, drawn: np.ndarray, count: int) -> np.ndarray:
    """The sources (indices into `weights`) of the next `count` windows, in order, given the
    windows each source has had so far (`drawn`). `weights` are positive."""
    if len(weights) == 1:
        return np.zeros(count, dtype=np.int64)
    # enough due times per source for its share of `count`; widened where one ran short
    depth = np.ceil(weights * count).astype(np.int64) + 2
    while True:
        steps = np.arange(int(depth.max()))
        index = drawn[:, None] + steps[None, :]  # (K, depth) each source's window numbers
        # the integer index first: a due time is then the same float however the
        # sequence is sliced (resumed runs continue it bit for bit)
        due = (index + offsets(len(weights))[:, None]) / weights[:, None]
        due[steps[None, :] >= depth[:, None]] = np.inf
        order = np.argsort(due, axis=None, kind="stable")[:count]  # source-major: ties to lower i
        picked = order // due.shape[1]
        used = np.bincount(picked, minlength=len(weights))
        short = used >= depth
        if not short.any():
            return picked
        depth = np.where(short, depth * 2, depth)
