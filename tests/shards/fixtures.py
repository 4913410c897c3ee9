"""Session fixtures shared by the tokenizer, shards and loader tests (imported by their conftests).

One small real corpus, one tokenizer trained on it, one shard dataset built from both: each built
once per session (about a second in all) and treated as read-only by the tests.
"""

from __future__ import annotations

import pytest

from smelt.prep.shards import build_shards
from smelt.prep.tokenizer import train_tokenizer
from tests.shards.corpus_factory import write_corpus

TINY_VOCAB = 1024
VAL_FRACTION = 0.1
SHARD_TOKENS = 20_000


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, list[tuple[str, str]]]:
    """(corpus URI, its (id, text) documents)."""
    root = str(tmp_path_factory.mktemp("corpus"))
    return root, write_corpus(root, parts=3)


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_corpus, tmp_path_factory: pytest.TempPathFactory) -> str:
    out = str(tmp_path_factory.mktemp("tokenizer"))
    train_tokenizer(tiny_corpus[0], out, vocab_size=TINY_VOCAB)
    return out


@pytest.fixture(scope="session")
def tiny_shards(tiny_corpus, tiny_tokenizer, tmp_path_factory: pytest.TempPathFactory) -> str:
    out = str(tmp_path_factory.mktemp("shards"))
    build_shards(
        tiny_corpus[0], tiny_tokenizer, out, val_fraction=VAL_FRACTION, shard_tokens=SHARD_TOKENS
    )
    return out
