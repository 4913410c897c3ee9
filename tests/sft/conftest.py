"""Fixtures for fine-tuning: a base run that knows no facts, the facts as conversation files."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.sft.sft_data import build_base_run, write_fact_files


@pytest.fixture(scope="session")
def base_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A pretrained 2 x 64 run with smelt's tokenizer (ChatML tokens) and no chat template."""
    return build_base_run(tmp_path_factory.getbasetemp() / "sft-base")


@pytest.fixture(scope="session")
def fact_files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """The made-up facts as OpenAI JSONL, ShareGPT Parquet and Alpaca JSON."""
    return write_fact_files(tmp_path_factory.getbasetemp() / "sft-facts")


@pytest.fixture(scope="session")
def base_tokenizer(base_run: Path):
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(base_run / "tokenizer.json"))


@pytest.fixture(autouse=True)
def _single_thread_and_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """One thread for the tiny model on a shared 2-core machine; a private download cache."""
    monkeypatch.setenv("SMELT_CACHE_DIR", str(tmp_path / "cache"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def shards(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Token shards of a tokenizer without ChatML tokens (the training tests' own)."""
    from tests.training.conftest import build_tokenizer, write_shards

    root = tmp_path_factory.mktemp("plain-shards")
    build_tokenizer(root / "tokenizer.json")
    write_shards(root, root / "tokenizer.json")
    return str(root)
