"""Evaluation data from a corpus's held-out documents, and the demo's evaluation step."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from rich.console import Console

from smelt.evaluation.heldout import held_out_texts, next_words_quiz
from smelt.evaluation.sources import load_task
from smelt.prep.corpus_input import id_fraction
from tests.shards.corpus_factory import documents, write_corpus


def test_held_out_texts_are_the_documents_the_val_split_takes(tmp_path: Path) -> None:
    docs = write_corpus(str(tmp_path / "corpus"), parts=2)
    texts = held_out_texts(str(tmp_path / "corpus"), 0.05, limit=10_000)
    expected = [t for i, t in docs if id_fraction(i) < 0.05 and t.strip()]
    assert texts == expected and 0 < len(texts) < len(docs) // 10


def test_the_quiz_asks_for_the_words_that_really_follow(tmp_path: Path) -> None:
    texts = [t for _, t in documents()]
    rows = next_words_quiz(texts, items=40)
    assert len(rows) == 40
    flat = "\n".join(" ".join(t.split()) for t in texts)  # words as the quiz splits them
    for row in rows:
        assert len(row["choices"]) == 4 and len(set(row["choices"])) == 4
        assert f"{row['context']} {row['choices'][row['label']]}" in flat
    assert len({row["label"] for row in rows}) > 1  # the answer's position varies
    path = tmp_path / "quiz.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert len(load_task("next_words", str(path)).items) == 40  # the generic layout


def test_demo_ends_with_an_evaluation_table(
    trained_run: Path, tmp_path: Path, capsys, prefect_harness
) -> None:
    from smelt.cli.demo import DemoContext, step_evaluate

    console = Console(width=120)
    ctx = DemoContext(args=argparse.Namespace(), console=console, workdir=tmp_path)
    write_corpus(str(ctx.corpus_dir), parts=2)
    shutil.copytree(trained_run, ctx.run_dir)
    step_evaluate(ctx)
    result = json.loads((tmp_path / "eval" / "demo.json").read_text())
    assert result["tasks"]["next_words"]["n"] > 10
    assert result["bits_per_byte"]["heldout"] > 0 and result["val_loss"] > 0
    out = capsys.readouterr().out
    assert "$ smelt eval" in out and "bits_per_byte" in out and "next_words" in out


def test_demo_evaluates_without_a_quiz_when_no_held_out_sentence_is_long_enough(
    trained_run: Path, tmp_path: Path, capsys, prefect_harness
) -> None:
    """A short sample holds out few documents; with no sentence of 12 words among them the
    quiz is left out (it used to be an empty task file, and `smelt demo` ended in an error)."""
    from smelt.cli.demo import DEMO_VAL_FRACTION, DemoContext, step_evaluate

    ctx = DemoContext(args=argparse.Namespace(), console=Console(width=120), workdir=tmp_path)
    docs = [(f"doc-{i}", "Short words only. Nothing long here. " * 20) for i in range(300)]
    write_corpus(str(ctx.corpus_dir), parts=2, docs=docs)
    assert held_out_texts(str(ctx.corpus_dir), DEMO_VAL_FRACTION)  # some are held out
    shutil.copytree(trained_run, ctx.run_dir)
    step_evaluate(ctx)
    result = json.loads((tmp_path / "eval" / "demo.json").read_text())
    assert result["tasks"] == {} and result["bits_per_byte"]["heldout"] > 0
    assert "next-words quiz: it is left out" in capsys.readouterr().out
