"""The `tokenizer-train` flow: byte-level BPE trained on a sample of a finished corpus."""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger
from prefect.artifacts import create_markdown_artifact

from smelt.flows.flow import flow
from smelt.prep.tokenizer import DEFAULT_SAMPLE_BYTES, DEFAULT_VOCAB_SIZE, TokenizerReport
from smelt.tasks.tokenizer import train_tokenizer


@flow(name="tokenizer-train")
def tokenizer_train(
    corpus: str,
    output: str,
    vocab_size: int = DEFAULT_VOCAB_SIZE,
    sample_bytes: int = DEFAULT_SAMPLE_BYTES,
    force: bool = False,
) -> dict[str, Any]:
    """Train a tokenizer on `corpus` into `output`; publishes its report as an artifact.

    A tokenizer at `output` already trained from the same corpus and settings is kept
    (`skipped` in the summary) unless `force`.
    """
    summary = train_tokenizer(corpus, output, vocab_size, sample_bytes, force)
    report = TokenizerReport.from_dict(summary)
    for warning in report.warnings:
        get_run_logger().warning("%s", warning)
    create_markdown_artifact(
        key="tokenizer-report",
        markdown=report.to_markdown(),
        description=f"Tokenizer trained on {corpus} -> {output}",
    )
    return summary
