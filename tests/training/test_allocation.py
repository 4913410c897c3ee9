"""The per-window source sequence: exact shares at every prefix, the same in any slicing."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from smelt.training.allocation import allocate

weights_lists = st.lists(st.floats(min_value=0.01, max_value=100), min_size=1, max_size=10)


def normalised(raw: list[float]) -> np.ndarray:
    weights = np.array(raw, dtype=np.float64)
    return weights / weights.sum()


@settings(max_examples=60, deadline=None)
@given(weights_lists, st.integers(min_value=1, max_value=64))
def test_every_prefix_gives_each_source_its_share(raw: list[float], batch: int) -> None:
    weights = normalised(raw)
    drawn = np.zeros(len(weights), dtype=np.int64)
    for _ in range(30):
        picks = allocate(weights, drawn, batch)
        assert len(picks) == batch
        drawn += np.bincount(picks, minlength=len(weights))
        assert np.all(np.abs(drawn - weights * drawn.sum()) < 2.0), (weights, drawn)


@settings(max_examples=60, deadline=None)
@given(weights_lists, st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=8))
def test_the_sequence_does_not_depend_on_how_it_is_served(raw: list[float], sizes: list[int]):
    """Batch after batch, or all at once: the same sources in the same order (so a step of
    several micro-batches, a resumed run and a changed batch size all continue one sequence)."""
    weights = normalised(raw)
    drawn = np.zeros(len(weights), dtype=np.int64)
    pieces = []
    for size in sizes:
        picks = allocate(weights, drawn, size)
        drawn += np.bincount(picks, minlength=len(weights))
        pieces.append(picks)
    whole = allocate(weights, np.zeros(len(weights), dtype=np.int64), sum(sizes))
    assert np.array_equal(np.concatenate(pieces), whole)


def test_sources_interleave_instead_of_arriving_in_runs() -> None:
    picks = allocate(np.array([0.5, 0.3, 0.2]), np.zeros(3, dtype=np.int64), 10)
    # due times: source 0 at 1, 3, 5, 7, 9; source 1 at 1.67, 5, 8.33; source 2 at 2.5, 7.5
    assert picks.tolist() == [0, 1, 2, 0, 0, 1, 0, 2, 1, 0]


def test_a_source_far_behind_catches_up_first() -> None:
    """A source that is owed many windows (its share was raised) gets them before the rest,
    however many that is: nothing caps how far ahead the sequence looks."""
    picks = allocate(np.array([0.5, 0.5]), np.array([100, 0]), 60)
    assert picks.tolist() == [1] * 60
