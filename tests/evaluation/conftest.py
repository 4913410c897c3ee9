"""Evaluation fixtures: a tiny model really trained on real text, its export, task files.

The model is the training tests' narrowed `test` preset with a 64-token context, so rolling
windows over the text files need several windows per document; 60 CPU steps take seconds.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.evaluation.task_factory import write_task_files
from tests.training.conftest import build_tokenizer, child_env, run_loop, train_args, write_shards

MAX_LENGTH = 64


@pytest.fixture(scope="session")
def eval_shards(tmp_path_factory: pytest.TempPathFactory) -> str:
    root = tmp_path_factory.mktemp("eval-shards")
    build_tokenizer(root / "tokenizer.json")
    write_shards(root, root / "tokenizer.json")
    return str(root)


@pytest.fixture(scope="session")
def trained_run(eval_shards: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run with checkpoints at steps 30 and 60 (no Prefect: the loop in a child process)."""
    work = tmp_path_factory.mktemp("eval-run")
    output = work / "run"
    args = train_args(
        eval_shards,
        str(output),
        "--checkpoint-every",
        "30",
        "--model-override",
        f"max_seq_len={MAX_LENGTH}",
        steps=60,
    )
    run_loop(args, env=child_env(SMELT_CACHE_DIR=str(work / "cache")))
    return output


@pytest.fixture(scope="session")
def task_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Path], dict[str, Path]]:
    return write_task_files(tmp_path_factory.mktemp("eval-tasks"))


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMELT_CACHE_DIR", str(tmp_path / "cache"))
