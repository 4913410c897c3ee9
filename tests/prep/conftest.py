"""Fixtures of this test area: the shared tiny corpus, tokenizer and shards."""

from tests.shards.fixtures import tiny_corpus, tiny_shards, tiny_tokenizer  # noqa: F401
