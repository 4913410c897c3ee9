"""`smelt demo` (what `make demo` runs) end to end on a short setting, and a check of what each
of its steps left behind.

Every step of `smelt.cli.demo.STEPS` has an entry in `OUTPUT_CHECKS` below: a function of the
demo's work directory (and its printed output) that fails when that step's output is missing or
makes no sense. A new demo step needs a new entry; `test_every_demo_step_has_an_output_check`
says so.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from smelt.cli.demo import STEPS

MAX_DOCS, TRAIN_STEPS, VOCAB = 1200, 12, 2048
PROMPT = "The Python interpreter"


def check_sample(workdir: Path, out: str) -> None:
    files = [p for p in (workdir / "raw").rglob("*") if p.is_file()]
    assert 0 < len(files) <= MAX_DOCS


def check_corpus(workdir: Path, out: str) -> None:
    from tests.corpus_build.conftest import read_corpus

    stats = json.loads((workdir / "corpus" / "stats.json").read_text())
    rows = read_corpus(str(workdir / "corpus"))
    assert stats["kept"] == len(rows) > 50
    removed = stats["quarantined"] + sum(stats["filtered"].values())
    assert stats["input_docs"] == stats["kept"] + removed + sum(stats["duplicates"].values())
    assert all(row["text"].strip() for row in rows)


def check_tokenizer(workdir: Path, out: str) -> None:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(workdir / "tokenizer" / "tokenizer.json"))
    assert 256 < tokenizer.get_vocab_size() <= VOCAB
    assert tokenizer.token_to_id("<|endoftext|>") is not None
    text = "def main(): return 42"
    assert tokenizer.decode(tokenizer.encode(text).ids) == text


def check_shards(workdir: Path, out: str) -> None:
    from smelt.prep.shard_format import open_manifest

    manifest = open_manifest(str(workdir / "shards"))
    assert manifest.split("train")
    assert "$ smelt shards verify" in out
    done = subprocess.run(
        [sys.executable, "-m", "smelt.cli.main", "shards", "verify", str(workdir / "shards")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr


def check_train(workdir: Path, out: str) -> None:
    from smelt.training.checkpoint import complete_steps
    from smelt.training.metrics import read_metrics

    run = workdir / "runs" / "demo"
    records = read_metrics(str(run / "metrics.jsonl"))
    assert [r["step"] for r in records] == list(range(1, TRAIN_STEPS + 1))
    losses = [r["loss"] for r in records]
    assert all(math.isfinite(loss) for loss in losses)
    assert sum(losses[-4:]) / 4 < sum(losses[:4]) / 4  # it learned something
    assert max(complete_steps(str(run))) == TRAIN_STEPS


def check_generate(workdir: Path, out: str) -> None:
    after = out.split("$ smelt generate", 1)[1]
    assert PROMPT in after
    sample = after.split(PROMPT, 1)[1].split("\n")[0]
    assert sample.strip(), "generated text follows the prompt"


def check_evaluate(workdir: Path, out: str) -> None:
    """The evaluation of the demo run. Which documents the shards hold out follows their ids
    (hashes of their paths under the work directory), so a short sample may hold out none, or
    none with a sentence long enough for the quiz: the demo then says so and leaves it out."""
    result = json.loads((workdir / "eval" / "demo.json").read_text())
    assert result["step"] == TRAIN_STEPS
    if "next-words quiz: it is left out" in out:
        assert "next_words" not in result["tasks"]
    else:
        quiz = result["tasks"]["next_words"]
        assert quiz["n"] >= 1 and 0.0 <= quiz["acc"] <= 1.0 and 0.0 <= quiz["acc_norm"] <= 1.0
    if (workdir / "eval" / "heldout.jsonl").exists():
        assert 0 < result["bits_per_byte"]["heldout"] < 16
    if "val_loss" in result:
        assert math.isfinite(result["val_loss"]) and result["val_loss"] > 0


def check_sft(workdir: Path, out: str) -> None:
    from smelt.training.checkpoint import complete_steps
    from smelt.training.metrics import read_metrics

    questions = (workdir / "chat" / "questions.jsonl").read_text().splitlines()
    assert questions and all(json.loads(q)["messages"][1]["role"] == "assistant" for q in questions)
    run = workdir / "runs" / "demo-sft"
    steps = max(10, TRAIN_STEPS // 3)  # the demo's default --sft-steps
    records = [r for r in read_metrics(str(run / "metrics.jsonl")) if "loss" in r]
    assert [r["step"] for r in records] == list(range(1, steps + 1))
    assert all(math.isfinite(r["loss"]) for r in records)
    assert max(complete_steps(str(run))) == steps


def check_chat(workdir: Path, out: str) -> None:
    after = out.split("$ smelt chat", 1)[1]
    reply = after.split("\n", 1)[1].split("\n\n", 1)[0]  # the lines after the echoed command
    assert reply.strip(), "the fine-tuned model answered"


OUTPUT_CHECKS: dict[str, Callable[[Path, str], None]] = {
    "sample": check_sample,
    "corpus": check_corpus,
    "tokenizer": check_tokenizer,
    "shards": check_shards,
    "train": check_train,
    "generate": check_generate,
    "evaluate": check_evaluate,
    "sft": check_sft,
    "chat": check_chat,
}


def test_every_demo_step_has_an_output_check() -> None:
    assert [name for name, _ in STEPS] == list(OUTPUT_CHECKS), (
        "add a check of the new demo step's output to OUTPUT_CHECKS in tests/test_demo.py"
    )


@pytest.mark.slow
def test_demo_runs_end_to_end_on_a_short_setting(tmp_path: Path) -> None:
    workdir = tmp_path / "demo"
    env = {
        **os.environ,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "COLUMNS": "200",
        "OMP_NUM_THREADS": "1",  # tiny matmuls: one thread is fastest, and fair to a busy CI host
    }
    done = subprocess.run(
        [sys.executable, "-m", "smelt.cli.main", "demo", "--workdir", str(workdir)]
        + ["--max-docs", str(MAX_DOCS), "--train-steps", str(TRAIN_STEPS)]
        + ["--vocab-size", str(VOCAB), "--prompt", PROMPT],
        env=env,
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for name, check in OUTPUT_CHECKS.items():
        try:
            check(workdir, done.stdout)
        except AssertionError as exc:
            raise AssertionError(f"demo step {name!r}: {exc}") from exc
    assert "smelt demo: done" in done.stdout
