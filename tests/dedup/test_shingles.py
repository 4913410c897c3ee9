"""Shingling: simplification, n-gram counts, determinism across processes."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from smelt.corpus.dedup.minhash import signatures
from smelt.corpus.dedup.shingles import shingle_batch, simplify


def test_simplify_folds_case_punctuation_digits_and_unicode_separators():
    text = "Hello, World! “Quoted”\u00a0— Version 3.11_beta\tÉTÉ 2024…"
    assert simplify(text) == "hello world quoted version 0 00 beta été 0000"


def test_formatting_noise_does_not_change_shingles():
    plain = "the quick brown fox jumps over the lazy dog again and again"
    noisy = "The  quick, brown fox -- jumps over: the LAZY dog... again, and again!"
    flat, offsets = shingle_batch([plain, noisy], 5)
    first, second = flat[offsets[0] : offsets[1]], flat[offsets[1] : offsets[2]]
    assert np.array_equal(first, second)


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.integers(min_value=0, max_value=40), min_size=1, max_size=6),
    st.integers(min_value=1, max_value=8),
)
def test_shingle_counts(word_counts, ngram):
    texts = [" ".join(f"w{i}x" for i in range(count)) for count in word_counts]
    _, offsets = shingle_batch(texts, ngram)
    expected = [max(count - ngram + 1, 1) if count else 0 for count in word_counts]
    assert np.diff(offsets).tolist() == expected


def test_shingles_depend_on_word_order():
    flat, offsets = shingle_batch(["a b c d e", "e d c b a"], 5)
    assert flat[0] != flat[1]


SCRIPT = (
    "from smelt.corpus.dedup.minhash import signatures;"
    "s, _ = signatures(['alpha beta gamma delta epsilon zeta eta theta', 'x y'], 5, 160, 1);"
    "print(s.sum(axis=1).tolist(), s[0, :4].tolist())"
)


def test_signatures_identical_in_another_process():
    here, _ = signatures(["alpha beta gamma delta epsilon zeta eta theta", "x y"], 5, 160, 1)
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "123"},
    ).stdout
    assert out.strip() == f"{here.sum(axis=1).tolist()} {here[0, :4].tolist()}"
