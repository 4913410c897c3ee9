"""Prefect task of tokenizer training: a thin wrapper over `smelt.prep.tokenizer`."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from prefect import task
from prefect.cache_policies import NONE

from smelt.prep import tokenizer


@task(name="train-tokenizer", retries=1, retry_delay_seconds=5, cache_policy=NONE)
def train_tokenizer(
    corpus_uri: str, output_uri: str, vocab_size: int, sample_bytes: int, force: bool = False
) -> dict[str, Any]:
    """Train BPE on a corpus sample (skipped when current); report.json's fields + the output."""
    report = tokenizer.train_tokenizer(
        corpus_uri, output_uri, vocab_size=vocab_size, sample_bytes=sample_bytes, force=force
    )
    return {"output": output_uri, **asdict(report)}
