"""`smelt tokenizer train` as a user runs it: what it prints, warnings included."""

from __future__ import annotations

from smelt.cli.main import main
from tests.shards.corpus_factory import write_corpus


def test_cli_says_when_the_vocabulary_falls_short(prefect_harness, tmp_path, capsys):
    corpus, out = str(tmp_path / "corpus"), str(tmp_path / "tok")
    write_corpus(corpus, parts=1, limit=150)
    args = ["tokenizer", "train", "--corpus", corpus, "--output", out, "--vocab-size", "16384"]
    assert main(args) == 0
    printed, errors = capsys.readouterr()
    assert printed.startswith("tokenizer: ") and "bytes/token on 16 held-out documents" in printed
    [warning] = [line for line in errors.splitlines() if line.startswith("warning: ")]
    assert "not the requested 16,384" in warning and "--vocab-size" in warning
    assert main(args) == 0
    printed, errors = capsys.readouterr()
    assert printed.startswith("tokenizer: up to date, ") and "warning: " in errors
