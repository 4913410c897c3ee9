"""The tokenizer report on small corpora: a held-out set always, and no silent shortfall."""

from __future__ import annotations

import json

from smelt.prep.corpus_input import id_fraction
from smelt.prep.sample import HELDOUT_MIN_DOCS, HELDOUT_SHARE
from smelt.prep.tokenizer import train_tokenizer
from tests.shards.corpus_factory import documents, nonempty, write_corpus


def docs_outside_the_fraction(count: int, fraction: float = 0.01) -> list[tuple[str, str]]:
    """`count` real documents none of whose ids hash into the held-out fraction."""
    docs = [(i, t) for i, t in nonempty(documents()) if id_fraction(i) >= fraction]
    return docs[:count]


def test_a_small_corpus_still_gets_a_held_out_measure(tmp_path):
    docs = docs_outside_the_fraction(120)
    write_corpus(str(tmp_path / "corpus"), parts=2, docs=docs)
    report = train_tokenizer(str(tmp_path / "corpus"), str(tmp_path / "tok"), vocab_size=400)
    assert report.heldout_docs == min(HELDOUT_MIN_DOCS, len(docs) // HELDOUT_SHARE) == 16
    assert report.bytes_per_token is not None and 1.0 < report.bytes_per_token < 6
    assert report.sample_docs + report.heldout_docs == len(docs)  # held out = not trained on
    assert "on 16 held-out documents" in report.bytes_per_token_text()
    assert "on 16 held-out docs" in report.to_markdown()
    # the same documents are held out on every run
    again = train_tokenizer(
        str(tmp_path / "corpus"), str(tmp_path / "tok2"), vocab_size=400, force=True
    )
    assert (again.heldout_bytes, again.sample_bytes) == (report.heldout_bytes, report.sample_bytes)


def test_a_handful_of_documents_holds_out_one_and_fewer_hold_out_none(tmp_path):
    five = docs_outside_the_fraction(5)
    write_corpus(str(tmp_path / "five"), parts=1, docs=five)
    report = train_tokenizer(str(tmp_path / "five"), str(tmp_path / "tok5"), vocab_size=300)
    assert report.heldout_docs == 1 and report.bytes_per_token is not None
    write_corpus(str(tmp_path / "four"), parts=1, docs=five[:4])
    report = train_tokenizer(str(tmp_path / "four"), str(tmp_path / "tok4"), vocab_size=300)
    assert report.heldout_docs == 0 and report.bytes_per_token is None
    assert "n/a" in report.bytes_per_token_text() and "too small" in report.bytes_per_token_text()


def test_a_vocabulary_short_of_the_request_is_reported(tmp_path):
    write_corpus(str(tmp_path / "corpus"), parts=1, limit=150)
    report = train_tokenizer(str(tmp_path / "corpus"), str(tmp_path / "tok"), vocab_size=16384)
    assert report.vocab_size < 16384
    [warning] = report.warnings
    assert f"{report.vocab_size:,} tokens" in warning and "requested 16,384" in warning
    assert "--vocab-size" in warning and "larger corpus" in warning
    assert "**Warning:**" in report.to_markdown()
    recorded = json.loads((tmp_path / "tok" / "report.json").read_text())
    assert recorded["warnings"] == [warning]


def test_a_reached_vocabulary_has_no_warning(tiny_tokenizer):
    with open(f"{tiny_tokenizer}/report.json") as fh:
        report = json.load(fh)
    assert report["vocab_size"] == report["requested_vocab_size"] and report["warnings"] == []
