"""`smelt tokenizer train`, `smelt shards build` and `smelt shards verify` as a user runs them."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

import pytest

from smelt.cli.main import build_parser
from tests.shards.corpus_factory import tree_bytes
from tests.shards.fixtures import SHARD_TOKENS, TINY_VOCAB, VAL_FRACTION


@pytest.mark.slow
def test_cli_trains_builds_and_verifies(
    prefect_harness, tiny_corpus, tiny_tokenizer, tiny_shards, tmp_path
):
    from prefect.settings import PREFECT_API_URL

    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()}

    def smelt(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "smelt.cli.main", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )

    tok, out = str(tmp_path / "tok"), str(tmp_path / "shards")
    trained = smelt(
        "tokenizer",
        "train",
        "--corpus",
        tiny_corpus[0],
        "--output",
        tok,
        "--vocab-size",
        str(TINY_VOCAB),
    )
    assert trained.returncode == 0, trained.stderr
    assert f"{TINY_VOCAB:,} tokens" in trained.stdout
    built = smelt(
        "shards",
        "build",
        "--corpus",
        tiny_corpus[0],
        "--tokenizer",
        tok,
        "--output",
        out,
        "--val-fraction",
        str(VAL_FRACTION),
        "--shard-tokens",
        str(SHARD_TOKENS),
        "--runner",
        "thread",
        "--workers",
        "2",
    )
    assert built.returncode == 0, built.stderr
    assert "2 empty skipped" in built.stdout
    verified = smelt("shards", "verify", out)
    assert verified.returncode == 0 and verified.stdout.startswith("OK ")
    built_files, reference = tree_bytes(out), tree_bytes(tiny_shards)
    assert built_files.pop("build_report.json") and reference.pop("build_report.json")
    assert built_files == reference

    missing = smelt(
        "shards",
        "build",
        "--corpus",
        str(tmp_path / "no-corpus"),
        "--tokenizer",
        tok,
        "--output",
        str(tmp_path / "x"),
    )
    assert missing.returncode == 2 and missing.stderr.startswith("error: input not found")
    assert "Traceback" not in missing.stderr


def _command(*names: str) -> argparse.ArgumentParser:
    parser = build_parser()
    for name in names:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = sub.choices[name]
    return parser
