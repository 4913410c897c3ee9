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
def test_every_prefix_gives_each_source_about_its_share(raw: list[float], batch: int) -> None:
    weights = normalised(raw)
    drawn = np.zeros(len(weights), dtype=np.int64)
    for _ in range(30):
        picks = allocate(weights, drawn, batch)
        assert len(picks) == batch
        drawn += np.bincount(picks, minlength=len(weights))
        bound = max(1.0, len(weights) / 3) + 1  # measured: < 1 for two, ~K/3 for K sources
        assert np.all(np.abs(drawn - weights * drawn.sum()) < bound), (weights, drawn)


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
    # offsets 0.5, 0.118, 0.736; due times: source 0 at 1, 3, 5, 7, 9; source 1 at 0.39, 3.73,
    # 7.06; source 2 at 3.68, 8.68
    assert picks.tolist() == [1, 0, 0, 2, 1, 0, 0, 1, 2, 0]


def test_two_sources_are_never_a_window_off() -> None:
    for first in (0.5, 0.7, 0.9, 0.99, 0.999):
        weights = np.array([first, 1 - first])
        picks = allocate(weights, np.zeros(2, dtype=np.int64), 3000)
        counts = np.cumsum(np.eye(2)[picks], axis=0)
        assert np.abs(counts - np.outer(np.arange(1, 3001), weights)).max() < 1


def test_one_large_source_among_many_small_ones_does_not_run_ahead() -> None:
    """A main corpus and thirty nights: the nights' turns are staggered, so the main corpus
    never gets far ahead of its share (with one offset for all it would, by ~w * K / 2)."""
    weights = np.array([0.7] + [0.01] * 30)
    picks = allocate(weights, np.zeros(31, dtype=np.int64), 3000)
    counts = np.cumsum(np.eye(31)[picks], axis=0)
    assert np.abs(counts - np.outer(np.arange(1, 3001), weights)).max() < 2


def test_a_source_far_behind_catches_up_first() -> None:
    """A source that is owed many windows (its share was raised) gets them before the rest,
    however many that is: nothing caps how far ahead the sequence looks."""
    picks = allocate(np.array([0.5, 0.5]), np.array([100, 0]), 60)
    assert picks.tolist() == [1] * 60
