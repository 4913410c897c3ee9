"""The plan of a shard build: its inputs, checked up front, and the fingerprints they give.

A plan is small and picklable (it travels to every worker). Its fingerprints decide what a
rerun may reuse (`smelt.storage.stage`):

- `source_fingerprint`: the corpus's identity, the tokenizer's checksum and the val fraction,
  everything a tokenized partition depends on (besides the partition's name), and the corpus's
  superseded sources when it has any (a later build replacing documents makes the set stale);
- `fingerprint`: that plus the shard size and the format: the identity of the finished shard
  set, recorded in `build_report.json` before the manifest.
"""

from __future__ import annotations

from dataclasses import dataclass

from smelt import storage
from smelt.errors import ConfigError, InputError
from smelt.prep.corpus_input import FinishedCorpus, open_corpus
from smelt.prep.defaults import (  # noqa: F401 - re-exported
    DEFAULT_SHARD_TOKENS,
    DEFAULT_VAL_FRACTION,
)
from smelt.prep.layout import ShardsLayout, TokenizerLayout
from smelt.prep.shard_format import FORMAT
from smelt.prep.specials import EOS
from smelt.prep.tokenizer_files import load_tokenizer
from smelt.storage.preflight import check_bucket
from smelt.storage.stage import fingerprint


@dataclass(frozen=True)
class BuildPlan:
    """Everything a build step needs."""

    corpus: FinishedCorpus
    tokenizer_uri: str
    output_uri: str
    val_fraction: float
    shard_tokens: int
    tokenizer_sha256: str
    vocab_size: int
    eos_id: int

    @property
    def layout(self) -> ShardsLayout:
        return ShardsLayout(self.output_uri)

    @property
    def partitions(self) -> tuple[str, ...]:
        return self.corpus.partitions

    @property
    def source_fingerprint(self) -> str:
        parts = ["tokenized", self.corpus.identity, self.tokenizer_sha256, self.val_fraction]
        if self.corpus.superseded:  # absent otherwise: sets built before it stay current
            parts.append(list(self.corpus.superseded))
        return fingerprint(*parts)

    @property
    def fingerprint(self) -> str:
        return fingerprint(
            FORMAT,
            self.source_fingerprint,
            [storage.basename(p) for p in self.partitions],
            self.shard_tokens,
        )


def plan_build(
    corpus_uri: str,
    tokenizer_uri: str,
    output_uri: str,
    val_fraction: float = DEFAULT_VAL_FRACTION,
    shard_tokens: int = DEFAULT_SHARD_TOKENS,
) -> BuildPlan:
    """Validate inputs and parameters (clear errors before any work) and plan the build."""
    if not 0.0 <= val_fraction < 1.0:
        raise ConfigError(f"--val-fraction {val_fraction} must be in [0, 1)")
    if shard_tokens < 1:
        raise ConfigError(f"--shard-tokens {shard_tokens} must be positive")
    corpus = open_corpus(corpus_uri)
    if storage.is_s3(tokenizer_uri):  # fail fast on a bucket, endpoint or credentials
        check_bucket(tokenizer_uri)
    tokenizer = load_tokenizer(tokenizer_uri)
    tokenizer_file = TokenizerLayout.file_uri(storage.normalize(tokenizer_uri))
    if output_uri:  # a plan for a fingerprint alone has no output
        check_output(
            storage.normalize(output_uri), corpus.root, TokenizerLayout.at(tokenizer_file).root
        )
    return BuildPlan(
        corpus=corpus,
        tokenizer_uri=tokenizer_file,
        output_uri=storage.normalize(output_uri),
        val_fraction=val_fraction,
        shard_tokens=shard_tokens,
        tokenizer_sha256=storage.sha256_bytes(storage.read_bytes(tokenizer_file)),
        vocab_size=tokenizer.get_vocab_size(with_added_tokens=True),
        eos_id=tokenizer.token_to_id(EOS),
    )


def check_output(output_uri: str, corpus_root: str, tokenizer_root: str) -> None:
    """Refuse an output that would mix shards into the corpus or the tokenizer, or that this
    process cannot write, before anything is written."""
    for label, root in (("corpus", corpus_root), ("tokenizer", tokenizer_root)):
        if output_uri == root or output_uri.startswith(root.rstrip("/") + "/"):
            raise InputError(
                f"--output {output_uri} is inside the {label} {root}; choose another directory"
            )
    storage.require_writable(output_uri)
