"""Byte-level BPE tokenizer training on a bounded, deterministic sample of a corpus.

The tokenizer is Hugging Face `tokenizers` byte-level BPE (GPT-2 style) with two twists that
small models benefit from: digits are split one by one before BPE (so numbers are never merged
into multi-digit tokens: Llama, DeepSeek), and the control tokens and the corpus's PII
placeholders are atomic special tokens that also match inside corpus text.

Training is a resumable stage (`smelt.storage.stage`): the tokenizer files come first, then
`report.json`, which records the fingerprint of what the tokenizer was trained from (the
corpus's identity, the vocabulary and sample settings). A rerun with the same inputs returns
the recorded report without training; `is_current` answers the same question for a pipeline.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import asdict, dataclass, field
from typing import Any

from smelt import storage
from smelt.errors import ConfigError, InputError
from smelt.prep.corpus_input import FinishedCorpus, open_corpus
from smelt.prep.defaults import (  # noqa: F401 - re-exported
    DEFAULT_HELDOUT_FRACTION,
    DEFAULT_HELDOUT_MAX_BYTES,
    DEFAULT_SAMPLE_BYTES,
    DEFAULT_VOCAB_SIZE,
)
from smelt.prep.layout import TokenizerLayout
from smelt.prep.sample import Sample
from smelt.prep.specials import EOS, special_tokens
from smelt.prep.tokenizer_files import MAX_VOCAB_SIZE, save_tokenizer_files
from smelt.storage.stage import Marker, fingerprint, run_once

log = logging.getLogger(__name__)

MIN_FREQUENCY = 2  # a pair seen once is noise, not a token
RECIPE = "smelt-bpe-v2"  # changes whenever the same inputs would train another tokenizer


@dataclass(frozen=True)
class TokenizerReport:
    """What `report.json` records about a trained tokenizer."""

    vocab_size: int
    requested_vocab_size: int
    eos_id: int
    special_tokens: list[str]
    sample_docs: int
    sample_bytes: int
    heldout_docs: int
    heldout_bytes: int
    heldout_tokens: int
    bytes_per_token: float | None
    tokenizer_sha256: str
    fingerprint: str = ""
    warnings: list[str] = field(default_factory=list)
    skipped: bool = False  # not stored: this call found the tokenizer current and kept it

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> TokenizerReport:
        """The report in a `report.json` record (other keys, such as `skipped`, ignored)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in record.items() if k in names})

    def bytes_per_token_text(self) -> str:
        """`3.912 bytes/token on 16 held-out documents`, or why there is no figure."""
        if self.bytes_per_token is None:
            return "bytes/token n/a (no held-out documents: the corpus is too small)"
        docs = "document" if self.heldout_docs == 1 else "documents"
        return f"{self.bytes_per_token:.3f} bytes/token on {self.heldout_docs:,} held-out {docs}"

    def to_markdown(self) -> str:
        bpt = "n/a" if self.bytes_per_token is None else f"{self.bytes_per_token:.3f}"
        lines = [
            "# Tokenizer",
            "",
            "| metric | value |",
            "|---|---|",
            f"| vocabulary | {self.vocab_size:,} (requested {self.requested_vocab_size:,}) |",
            f"| training sample | {self.sample_docs:,} docs, {self.sample_bytes:,} bytes |",
            f"| held-out | {self.heldout_docs:,} docs, {self.heldout_bytes:,} bytes |",
            f"| bytes per token (on {self.heldout_docs:,} held-out docs) | {bpt} |",
            f"| special tokens | {len(self.special_tokens)} |",
            f"| {TokenizerLayout.TOKENIZER} SHA-256 | `{self.tokenizer_sha256[:16]}…` |",
        ]
        lines += ["", *(f"**Warning:** {w}" for w in self.warnings)] if self.warnings else []
        return "\n".join(lines)


@dataclass(frozen=True)
class TrainRequest:
    """A checked request: the corpus, the settings, and the fingerprint they give."""

    corpus: FinishedCorpus
    vocab_size: int
    sample_bytes: int
    heldout_fraction: float
    heldout_max_bytes: int

    @property
    def special_tokens(self) -> tuple[str, ...]:
        return special_tokens(self.corpus.placeholders)

    @property
    def fingerprint(self) -> str:
        return fingerprint(
            RECIPE,
            self.corpus.identity,
            self.special_tokens,
            self.vocab_size,
            self.sample_bytes,
            self.heldout_fraction,
            self.heldout_max_bytes,
        )


def check_request(
    corpus_uri: str,
    vocab_size: int = DEFAULT_VOCAB_SIZE,
    sample_bytes: int = DEFAULT_SAMPLE_BYTES,
    heldout_fraction: float = DEFAULT_HELDOUT_FRACTION,
    heldout_max_bytes: int = DEFAULT_HELDOUT_MAX_BYTES,
    output_uri: str | None = None,
) -> TrainRequest:
    """Refuse a bad setting, an unfinished corpus or an unwritable `output_uri` before any
    work; the checked request."""
    corpus = open_corpus(corpus_uri)
    if output_uri is not None:
        storage.require_writable(TokenizerLayout.at(output_uri).root)
    request = TrainRequest(corpus, vocab_size, sample_bytes, heldout_fraction, heldout_max_bytes)
    low = 256 + len(request.special_tokens)
    if not low <= vocab_size <= MAX_VOCAB_SIZE:
        raise ConfigError(
            f"--vocab-size {vocab_size}: byte-level BPE needs at least {low} and uint32 "
            f"shards at most {MAX_VOCAB_SIZE}"
        )
    if sample_bytes < 1:
        raise ConfigError(f"--sample-bytes {sample_bytes} must be positive")
    if not 0.0 <= heldout_fraction < 1.0:
        raise ConfigError(f"held-out fraction {heldout_fraction} must be in [0, 1)")
    return request


def fingerprint_for(
    corpus_uri: str,
    vocab_size: int = DEFAULT_VOCAB_SIZE,
    sample_bytes: int = DEFAULT_SAMPLE_BYTES,
    heldout_fraction: float = DEFAULT_HELDOUT_FRACTION,
    heldout_max_bytes: int = DEFAULT_HELDOUT_MAX_BYTES,
) -> str:
    """The fingerprint a tokenizer trained on `corpus_uri` with these settings records."""
    return check_request(
        corpus_uri, vocab_size, sample_bytes, heldout_fraction, heldout_max_bytes
    ).fingerprint


def is_current(uri: str, fingerprint: str) -> bool:
    """Whether the tokenizer at `uri` is finished and was trained from `fingerprint`'s inputs."""
    return Marker(TokenizerLayout.at(uri).report, fingerprint).done()


def train_tokenizer(
    corpus_uri: str,
    output_uri: str,
    vocab_size: int = DEFAULT_VOCAB_SIZE,
    sample_bytes: int = DEFAULT_SAMPLE_BYTES,
    heldout_fraction: float = DEFAULT_HELDOUT_FRACTION,
    heldout_max_bytes: int = DEFAULT_HELDOUT_MAX_BYTES,
    force: bool = False,
) -> TokenizerReport:
    """Train on a sample of the corpus at `corpus_uri` into `output_uri`.

    A tokenizer already there and current for these inputs is kept (its report comes back
    with `skipped`), unless `force`.
    """
    request = check_request(
        corpus_uri, vocab_size, sample_bytes, heldout_fraction, heldout_max_bytes, output_uri
    )
    marker = Marker(TokenizerLayout.at(output_uri).report, request.fingerprint)
    if force:
        marker.clear()

    def train() -> dict[str, Any]:
        marker.clear()  # the old report must not vouch for the files being replaced
        return asdict(_train(request, output_uri))

    record = run_once(marker, train)
    report = TokenizerReport.from_dict(record)
    if report.skipped:
        log.info("tokenizer %s is current for %s: not retrained", output_uri, corpus_uri)
    for warning in report.warnings:
        log.warning("%s", warning)
    return report


def _train(request: TrainRequest, output_uri: str) -> TokenizerReport:
    """Train, write the tokenizer files, and measure; the report (not yet written)."""
    specials = request.special_tokens
    tokenizer, trainer = build_untrained(request.vocab_size, specials)
    sample = Sample(
        request.corpus.partitions,
        request.sample_bytes,
        request.heldout_fraction,
        request.heldout_max_bytes,
    )
    tokenizer.train_from_iterator(sample.texts(), trainer)
    if sample.docs == 0:
        raise InputError(f"{request.corpus.root}: no non-empty documents to train a tokenizer on")
    heldout_tokens = sum(len(e.ids) for e in tokenizer.encode_batch(sample.heldout))
    reached = tokenizer.get_vocab_size(with_added_tokens=True)
    sha256 = save_tokenizer_files(tokenizer, specials, output_uri)
    report = TokenizerReport(
        vocab_size=reached,
        requested_vocab_size=request.vocab_size,
        eos_id=tokenizer.token_to_id(EOS),
        special_tokens=list(specials),
        sample_docs=sample.docs,
        sample_bytes=sample.bytes,
        heldout_docs=len(sample.heldout),
        heldout_bytes=sample.heldout_bytes,
        heldout_tokens=heldout_tokens,
        bytes_per_token=sample.heldout_bytes / heldout_tokens if heldout_tokens else None,
        tokenizer_sha256=sha256,
        fingerprint=request.fingerprint,
        warnings=_vocabulary_warnings(request, reached, sample),
    )
    log.info("tokenizer: %d tokens, %s", report.vocab_size, report.bytes_per_token_text())
    return report


def _vocabulary_warnings(request: TrainRequest, reached: int, sample: Sample) -> list[str]:
    """Say so when BPE ran out of pairs before the requested size: never a silent shortfall."""
    if reached >= request.vocab_size:
        return []
    return [
        f"vocabulary of {reached:,} tokens, not the requested {request.vocab_size:,}: the "
        f"training sample ({sample.docs:,} documents, {sample.bytes:,} bytes) has no more "
        f"byte pairs seen at least {MIN_FREQUENCY} times to merge; train on a larger corpus "
        "(or a larger --sample-bytes) or ask for a smaller --vocab-size"
    ]


def build_untrained(vocab_size: int, specials: tuple[str, ...]) -> tuple[Any, Any]:
    """An empty byte-level BPE tokenizer and its trainer: (Tokenizer, BpeTrainer)."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors
    from tokenizers.trainers import BpeTrainer

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=MIN_FREQUENCY,
        special_tokens=[AddedToken(t, special=True, normalized=False) for t in specials],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    return tokenizer, trainer
