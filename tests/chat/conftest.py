"""Fixtures for smelt.chat and `smelt chat`: a tiny trained chat run and its tokenizer."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.chat.chat_run import build_chat_run


@pytest.fixture(scope="session")
def chat_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A trained run with a chat template (what SFT leaves behind)."""
    return build_chat_run(tmp_path_factory.getbasetemp() / "chat-run")


@pytest.fixture(scope="session")
def tokenizer(chat_run: Path):
    """smelt's own byte-level BPE with the ChatML tokens (the run's tokenizer.json)."""
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(chat_run / "tokenizer.json"))


@pytest.fixture(scope="session")
def tokenizer_dir(chat_run: Path) -> Path:
    """The folder `smelt tokenizer train` wrote: tokenizer.json, config, chat template."""
    return chat_run.parent / "tokenizer"


@pytest.fixture(autouse=True)
def _single_thread():
    """A 2 x 64 model on a shared 2-core machine: one thread is fastest. Restored after."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
