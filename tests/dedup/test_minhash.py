"""The banding math and the signature estimate on documents of known Jaccard."""

from __future__ import annotations

import numpy as np
import pytest

from smelt.corpus.config import DedupConfig
from smelt.corpus.dedup.minhash import (
    candidate_probability,
    estimated_jaccard,
    signatures,
    verification_probability,
)
from smelt.corpus.dedup.shingles import shingle_batch
from tests.dedup.conftest import near_copy


def test_default_bands_meet_the_recall_targets():
    config = DedupConfig()
    num_perm = config.num_bands * config.rows_per_band
    caught = candidate_probability(0.8, config.num_bands, config.rows_per_band)
    removed_at_08 = caught * verification_probability(0.8, num_perm, config.jaccard_threshold)
    removed_at_05 = candidate_probability(
        0.5, config.num_bands, config.rows_per_band
    ) * verification_probability(0.5, num_perm, config.jaccard_threshold)
    assert removed_at_08 >= 0.95
    assert removed_at_05 < 1e-6


def test_reference_points_from_the_literature():
    assert candidate_probability(0.8, 14, 8) == pytest.approx(0.924, abs=0.001)  # datatrove
    assert candidate_probability(0.8, 20, 8) == pytest.approx(0.975, abs=0.001)


def test_constructed_pairs_have_the_planned_jaccard(vocab):
    for target in (0.5, 0.8, 0.9):
        base = vocab.words(400)
        copy = near_copy(base, target, vocab)
        flat, offsets = shingle_batch([" ".join(base), " ".join(copy)], 5)
        left = set(flat[offsets[0] : offsets[1]].tolist())
        right = set(flat[offsets[1] : offsets[2]].tolist())
        assert len(left & right) / len(left | right) == pytest.approx(target, abs=0.01)


def test_signature_estimate_tracks_jaccard(vocab):
    errors = []
    for target in (0.3, 0.5, 0.7, 0.9):
        for _ in range(10):
            base = vocab.words(300)
            sigs, counts = signatures(
                [" ".join(base), " ".join(near_copy(base, target, vocab))], 5, 160, 1
            )
            errors.append(estimated_jaccard(sigs[:1], sigs[1:])[0] - target)
    assert abs(np.mean(errors)) < 0.02
    assert np.std(errors) < 0.06


def test_empty_documents_have_no_shingles():
    sigs, counts = signatures(["", "   ", "one two"], 5, 16, 1)
    assert counts.tolist() == [0, 0, 1]
    assert sigs.shape == (3, 16)
