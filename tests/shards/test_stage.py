"""The shard build as a resumable stage: a current set is kept, a stale or damaged one rebuilt."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from smelt.errors import ConfigError
from smelt.prep.shards import build_shards, fingerprint_for, is_current
from tests.shards.corpus_factory import tree_bytes, write_corpus
from tests.shards.fixtures import SHARD_TOKENS, VAL_FRACTION


@pytest.fixture
def built(tiny_corpus, tiny_tokenizer, tmp_path) -> str:
    out = str(tmp_path / "shards")
    build_shards(
        tiny_corpus[0], tiny_tokenizer, out, val_fraction=VAL_FRACTION, shard_tokens=SHARD_TOKENS
    )
    return out


def _rebuild(tiny_corpus, tiny_tokenizer, out: str, **settings):
    settings = {"val_fraction": VAL_FRACTION, "shard_tokens": SHARD_TOKENS, **settings}
    return build_shards(tiny_corpus[0], tiny_tokenizer, out, **settings)


def test_a_current_shard_set_is_kept(built, tiny_corpus, tiny_tokenizer, tiny_shards):
    fingerprint = fingerprint_for(tiny_corpus[0], tiny_tokenizer, VAL_FRACTION, SHARD_TOKENS)
    assert is_current(built, fingerprint)
    assert not is_current(built, fingerprint_for(tiny_corpus[0], tiny_tokenizer, 0.2))
    stamps = {name: os.stat(os.path.join(built, name)).st_mtime_ns for name in tree_bytes(built)}
    again = _rebuild(tiny_corpus, tiny_tokenizer, built)
    assert again.skipped and again.summary()["docs"] == again.report["docs"] > 0
    assert stamps == {n: os.stat(os.path.join(built, n)).st_mtime_ns for n in tree_bytes(built)}
    forced = _rebuild(tiny_corpus, tiny_tokenizer, built, force=True)
    assert not forced.skipped and tree_bytes(built) == tree_bytes(tiny_shards)


def test_other_settings_rebuild(built, tiny_corpus, tiny_tokenizer):
    result = _rebuild(tiny_corpus, tiny_tokenizer, built, val_fraction=0.2)
    assert not result.skipped
    assert is_current(built, fingerprint_for(tiny_corpus[0], tiny_tokenizer, 0.2, SHARD_TOKENS))
    assert result.manifest.num_tokens("val") > 0


def test_a_damaged_set_is_not_current_and_is_rebuilt(built, tiny_corpus, tiny_tokenizer):
    fingerprint = fingerprint_for(tiny_corpus[0], tiny_tokenizer, VAL_FRACTION, SHARD_TOKENS)
    reference = tree_bytes(built)
    os.remove(os.path.join(built, "train", "shard_00001.bin"))
    assert not is_current(built, fingerprint)
    assert not _rebuild(tiny_corpus, tiny_tokenizer, built).skipped
    assert tree_bytes(built) == reference


def test_a_rebuilt_corpus_makes_the_shards_stale(tiny_tokenizer, tmp_path):
    corpus, out = str(tmp_path / "corpus"), str(tmp_path / "shards")
    write_corpus(corpus, parts=1, limit=100)
    build_shards(corpus, tiny_tokenizer, out, val_fraction=0.1)
    assert is_current(out, fingerprint_for(corpus, tiny_tokenizer, 0.1))
    write_corpus(corpus, parts=1, limit=120)
    assert not is_current(out, fingerprint_for(corpus, tiny_tokenizer, 0.1))
    assert not build_shards(corpus, tiny_tokenizer, out, val_fraction=0.1).skipped


def test_zero_workers_is_an_error(tiny_corpus, tiny_tokenizer, tmp_path):
    with pytest.raises(ConfigError, match="--workers"):
        build_shards(tiny_corpus[0], tiny_tokenizer, str(tmp_path / "out"), workers=0)
    result = subprocess.run(
        [sys.executable, "-m", "smelt.cli.main", "shards", "build", "--corpus", tiny_corpus[0]]
        + ["--tokenizer", tiny_tokenizer, "--output", str(tmp_path / "out"), "--workers", "0"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and "--workers: must be at least 1" in result.stderr
    assert result.stderr.strip().splitlines()[-1].endswith("--workers: must be at least 1, got 0")
    assert not (tmp_path / "out").exists()
