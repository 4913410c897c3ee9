"""A data plan resolved to shard sets: globs expanded, manifests read, weights per set, checked.

Resolution happens once, when a run starts, before anything is written, so every problem of the
data is an error before the first step: a glob that matches no finished shard set (one whose
`manifest.json`, written last, exists), a shard set that is missing or has no train split, a
model that cannot take a phase's `seq_len`, and sources that do not share one tokenizer (by its
SHA-256, vocabulary size and end-of-text id; the error names the odd one out).

A source's weight is shared among the shard sets a glob expands to in proportion to their
tokens; without weights every shard set of a phase is drawn in proportion to its tokens. Each
`ShardSet` remembers the source it came from (the URI as given, which names it in
`metrics.jsonl`) and the SHA-256 of its manifest (a rebuilt set is a changed source).
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from typing import Any

from smelt import storage
from smelt.errors import ConfigError, InputError
from smelt.prep.layout import ShardsLayout
from smelt.prep.shard_format import Manifest, open_manifest
from smelt.training.config import TrainConfig
from smelt.training.data_plan import (
    DataPlan,
    OnExhausted,
    PhaseSpec,
    SourceSpec,
    load_data_file,
    plan_from_shards,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ShardSet:
    """One finished shard set of a phase, with its share of the phase's windows."""

    source: str  # the source it came from, as given (a URI or a glob)
    uri: str  # the set's root
    manifest: Manifest
    manifest_sha256: str
    weight: float  # the phase's weights sum to 1

    def record(self) -> dict[str, Any]:
        """What a run remembers of the set (its phase history in every checkpoint)."""
        return {
            "source": self.source,
            "uri": self.uri,
            "manifest_sha256": self.manifest_sha256,
            "weight": self.weight,
        }


@dataclass(frozen=True)
class Phase:
    """A phase of the plan with its shard sets and settings resolved."""

    index: int  # position in the plan
    name: str
    sets: tuple[ShardSet, ...]
    seq_len: int
    until_tokens: int | None
    on_exhausted: OnExhausted

    @property
    def sources(self) -> list[str]:
        """The phase's sources as given, in order, each once."""
        return list(dict.fromkeys(s.source for s in self.sets))

    def signature(self) -> dict[str, Any]:
        """What makes two phases the same draw: sets, manifests, weights, window size."""
        return {"seq_len": self.seq_len, "sets": [s.record() for s in self.sets]}


@dataclass(frozen=True)
class TrainingData:
    """Every phase a run trains on; facts shared by all of them (one tokenizer)."""

    phases: tuple[Phase, ...]
    origin: str

    @property
    def primary(self) -> Manifest:
        """The first shard set of the first phase: its tokenizer is found beside it, and its
        val split gives the run's validation loss (one yardstick across phases)."""
        return self.phases[0].sets[0].manifest

    @property
    def vocab_size(self) -> int:
        return self.primary.vocab_size

    @property
    def tokenizer_sha256(self) -> str:
        return self.primary.tokenizer_sha256

    @property
    def sources(self) -> list[str]:
        """Every source of every phase, as given, each once."""
        return list(dict.fromkeys(src for phase in self.phases for src in phase.sources))

    def check_seq_len(self, max_seq_len: int) -> None:
        """Every phase's windows must fit the model."""
        for phase in self.phases:
            if phase.seq_len > max_seq_len:
                raise ConfigError(
                    f"{self.origin}: phase {phase.name!r} has seq_len {phase.seq_len}, more "
                    f"than the model's max_seq_len {max_seq_len}; lower it, or raise "
                    "max_seq_len (--model-override max_seq_len=N)"
                )


def load_plan(config: TrainConfig) -> DataPlan:
    """The plan of `--data FILE`, or the one phase of the `--shards` sources."""
    if config.data:
        return load_data_file(config.data)
    return plan_from_shards(config.shards)


def open_training_data(config: TrainConfig) -> TrainingData:
    """Resolve the run's data plan (module docstring); raises before anything is written."""
    return resolve(load_plan(config), config.seq_len, config.on_exhausted)


def resolve(plan: DataPlan, seq_len: int, on_exhausted: OnExhausted) -> TrainingData:
    opened: dict[str, tuple[Manifest, str]] = {}
    phases = tuple(
        _resolve_phase(index, spec, plan.origin, seq_len, on_exhausted, opened)
        for index, spec in enumerate(plan.phases)
    )
    _check_one_tokenizer([s for phase in phases for s in phase.sets])
    return TrainingData(phases, plan.origin)


def _resolve_phase(
    index: int,
    spec: PhaseSpec,
    origin: str,
    seq_len: int,
    on_exhausted: OnExhausted,
    opened: dict[str, tuple[Manifest, str]],
) -> Phase:
    where = origin if origin == "--shards" else f"{origin}, phase {spec.name!r}"
    expanded: list[tuple[SourceSpec, list[tuple[str, Manifest, str]]]] = []
    seen: dict[str, str] = {}
    for source in spec.sources:
        members = []
        for uri in _expand(source, where):
            if uri in seen:
                raise ConfigError(
                    f"{where}: shard set {uri} comes from both {seen[uri]} and {source.uri}; "
                    "list each shard set once per phase"
                )
            seen[uri] = source.uri
            if uri not in opened:
                opened[uri] = _open(uri)
            members.append((uri, *opened[uri]))
        expanded.append((source, members))
    sets = tuple(_weighted_sets(expanded))
    return Phase(
        index,
        spec.name,
        sets,
        spec.seq_len or seq_len,
        spec.until_tokens,
        spec.on_exhausted or on_exhausted,
    )


def _expand(source: SourceSpec, where: str) -> list[str]:
    """The shard set roots a source names: itself, or every finished set its glob matches."""
    if not source.is_glob:
        return [ShardsLayout.at(source.uri).root]
    matches = storage.glob_finished(source.uri, ShardsLayout.MANIFEST)
    if not matches:
        raise InputError(
            f"{where}: {source.uri} matches no finished shard set (a directory holding "
            f"{ShardsLayout.MANIFEST}); check the pattern, or build the shards first"
        )
    return [ShardsLayout.at(m).root for m in matches]


def _open(uri: str) -> tuple[Manifest, str]:
    manifest = open_manifest(uri)
    if manifest.num_tokens("train") == 0:
        raise InputError(
            f"shard set {uri} has no train tokens; rebuild it with `smelt shards build` "
            "from a corpus with documents, or leave it out"
        )
    return manifest, storage.sha256_uri(manifest.layout.manifest)


def _weighted_sets(
    expanded: list[tuple[SourceSpec, list[tuple[str, Manifest, str]]]],
) -> list[ShardSet]:
    """Each set's share: its source's normalised weight split in proportion to tokens, or,
    without weights, every set's tokens over all the phase's tokens."""
    weighted = expanded[0][0].weight is not None
    if weighted:
        total_weight = sum(source.weight or 0.0 for source, _ in expanded)
        shares = [(source.weight or 0.0) / total_weight for source, _ in expanded]
    else:
        everything = sum(m.num_tokens("train") for _, members in expanded for _, m, _ in members)
        shares = [
            sum(m.num_tokens("train") for _, m, _ in members) / everything
            for _, members in expanded
        ]
    sets = []
    for (source, members), share in zip(expanded, shares, strict=True):
        tokens = sum(m.num_tokens("train") for _, m, _ in members)
        for uri, manifest, sha in members:
            weight = share * manifest.num_tokens("train") / tokens
            sets.append(ShardSet(source.uri, uri, manifest, sha, weight))
    return sets


def _check_one_tokenizer(sets: list[ShardSet]) -> None:
    """All sets share one tokenizer; the error names the set that differs from the most."""

    def facts(s: ShardSet) -> tuple[str, int, int]:
        return s.manifest.tokenizer_sha256, s.manifest.vocab_size, s.manifest.eos_id

    counts = Counter(facts(s) for s in sets)
    if len(counts) == 1:
        return
    top = max(counts.values())
    reference = next(facts(s) for s in sets if counts[facts(s)] == top)
    usual = next(s for s in sets if facts(s) == reference)
    odd = next(s for s in sets if facts(s) != reference)
    (sha, vocab, eos), (ref_sha, ref_vocab, ref_eos) = facts(odd), reference
    if sha != ref_sha:
        what = f"tokenizer {sha[:12]}… where {usual.uri} has {ref_sha[:12]}…"
    elif vocab != ref_vocab:
        what = f"vocab_size {vocab} where {usual.uri} has {ref_vocab}"
    else:
        what = f"eos_id {eos} where {usual.uri} has {ref_eos}"
    raise ConfigError(
        f"shard set {odd.uri} (source {odd.source}) was built with {what}; every source of a "
        "run must share one tokenizer: rebuild it with `smelt shards build --tokenizer` of "
        "the others, or leave it out"
    )
