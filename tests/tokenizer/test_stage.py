"""Tokenizer training as a resumable stage: the corpus's placeholders, reruns, `is_current`."""

from __future__ import annotations

import os

import pytest
from tokenizers import Tokenizer

from smelt.prep import tokenizer as prep_tokenizer
from smelt.prep.tokenizer import fingerprint_for, is_current, train_tokenizer
from tests.shards.corpus_factory import write_corpus

CUSTOM = {"EMAIL_ADDRESS": "[MAIL]", "PERSON": "<NAME>", "US_SSN": "⟨SSN⟩"}
TEXT = "Write to [MAIL] or ask <NAME> about ⟨SSN⟩ and <EMAIL>."


def test_the_corpus_placeholders_are_atomic(tmp_path):
    docs = [(f"pii-{n}", f"{TEXT} Note {n}.") for n in range(30)]
    write_corpus(str(tmp_path / "corpus"), parts=1, docs=docs, placeholders=CUSTOM)
    report = train_tokenizer(str(tmp_path / "corpus"), str(tmp_path / "tok"), vocab_size=300)
    tokenizer = Tokenizer.from_file(str(tmp_path / "tok" / "tokenizer.json"))
    for placeholder in CUSTOM.values():
        assert placeholder in report.special_tokens
        assert tokenizer.encode(placeholder).tokens == [placeholder]
        assert placeholder in tokenizer.encode(TEXT).tokens
    assert "<EMAIL>" not in report.special_tokens  # not a placeholder of this corpus
    assert report.special_tokens[0] == "<|endoftext|>"


def test_a_current_tokenizer_is_kept_and_a_stale_one_retrained(tiny_corpus, tmp_path):
    corpus, out = tiny_corpus[0], str(tmp_path / "tok")
    first = train_tokenizer(corpus, out, vocab_size=400)
    assert not first.skipped
    assert is_current(out, fingerprint_for(corpus, vocab_size=400))
    assert not is_current(out, fingerprint_for(corpus, vocab_size=500))
    assert first.fingerprint == fingerprint_for(corpus, vocab_size=400)

    stamp = os.stat(os.path.join(out, "tokenizer.json")).st_mtime_ns
    again = train_tokenizer(corpus, out, vocab_size=400)
    assert again.skipped and again.tokenizer_sha256 == first.tokenizer_sha256
    assert os.stat(os.path.join(out, "tokenizer.json")).st_mtime_ns == stamp

    assert not train_tokenizer(corpus, out, vocab_size=400, force=True).skipped
    assert not train_tokenizer(corpus, out, vocab_size=500).skipped
    assert is_current(out, fingerprint_for(corpus, vocab_size=500))


def test_a_rebuilt_corpus_makes_the_tokenizer_stale(tmp_path):
    corpus, out = str(tmp_path / "corpus"), str(tmp_path / "tok")
    write_corpus(corpus, parts=1, limit=100)
    train_tokenizer(corpus, out, vocab_size=300)
    assert is_current(out, fingerprint_for(corpus, vocab_size=300))
    write_corpus(corpus, parts=1, limit=100, placeholders=CUSTOM)  # another config.json
    assert not is_current(out, fingerprint_for(corpus, vocab_size=300))


def test_an_interrupted_training_is_not_current(tiny_corpus, tmp_path, monkeypatch):
    corpus, out = tiny_corpus[0], str(tmp_path / "tok")

    def crash(*args, **kwargs):
        raise KeyboardInterrupt  # killed after the tokenizer files, before report.json

    original = prep_tokenizer.save_tokenizer_files
    monkeypatch.setattr(prep_tokenizer, "save_tokenizer_files", lambda *a: original(*a) and crash())
    with pytest.raises(KeyboardInterrupt):
        train_tokenizer(corpus, out, vocab_size=300)
    assert os.path.exists(os.path.join(out, "tokenizer.json"))
    assert not is_current(out, fingerprint_for(corpus, vocab_size=300))
    monkeypatch.setattr(prep_tokenizer, "save_tokenizer_files", original)
    assert not train_tokenizer(corpus, out, vocab_size=300).skipped
