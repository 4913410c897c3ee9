"""Which source each window of a mixture comes from: exact shares, no randomness.

Source i's k-th window (k = 0, 1, ...) is due at (k + 1/2) / w_i, and windows are served in order
of due time, ties to the lower source index. This is the Sainte-Laguë (Webster) divisor sequence:
after any number n of windows every source has had about w_i * n of them (within a window or
two, whatever the weights), the sources interleave evenly instead of arriving in runs, and the
sequence depends only on the weights and on how many windows each source has had, so a resumed
run continues it exactly. Serving n windows at once or in two calls gives the same sequence.
"""

from __future__ import annotations

import numpy as np


def allocate(weights: np.ndarray, drawn: np.ndarray, count: int) -> np.ndarray:
    """The sources (indices into `weights`) of the next `count` windows, in order, given the
    windows each source has had so far (`drawn`). `weights` are positive."""
    if len(weights) == 1:
        return np.zeros(count, dtype=np.int64)
    # enough due times per source for its share of `count`; widened where one ran short
    depth = np.ceil(weights * count).astype(np.int64) + 2
    while True:
        steps = np.arange(int(depth.max()))
        due = (drawn[:, None] + 0.5 + steps[None, :]) / weights[:, None]  # (K, depth)
        due[steps[None, :] >= depth[:, None]] = np.inf
        order = np.argsort(due, axis=None, kind="stable")[:count]  # source-major: ties to lower i
        picked = order // due.shape[1]
        used = np.bincount(picked, minlength=len(weights))
        short = used >= depth
        if not short.any():
            return picked
        depth = np.where(short, depth * 2, depth)
