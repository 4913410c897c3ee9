"""What a run trains on: sources, their weights, and phases (`--shards`, `--data FILE`).

A *source* is a shard set URI, or a glob meaning every finished shard set it matches, with an
optional weight: `--shards s3://lake/shards/main=0.7 --shards 's3://lake/shards/nightly/*=0.3'`.
Weights are normalised; without weights, sources are drawn in proportion to their tokens. Either
every source of a phase has a weight or none has (a half-weighted list is ambiguous).

A *phase* is a list of sources that lasts until the run has drawn `until_tokens` training tokens
(counted from the start of the run, so the ends must increase) and may set its own `seq_len` and
what happens when one of its sources runs out (`repeat` it, counting epochs, or `end_phase`).
The last phase may leave `until_tokens` out: it lasts until `--max-steps`. Pyr's plan reads:

    phases:
      - name: cosmopedia
        seq_len: 512
        until_tokens: 2B
        sources: [s3://lake/shards/cosmopedia]
      - name: fineweb-edu
        seq_len: 1024
        until_tokens: 6B
        sources:
          - {uri: s3://lake/shards/fineweb-edu, weight: 0.8}
          - {uri: "s3://lake/shards/nightly/*", weight: 0.2}
      - name: python-edu
        sources: [s3://lake/shards/python-edu]

(the same in TOML with `[[phases]]` tables). A file without phases lists `sources:` at the top.
Everything here is parsing and checking, no I/O beyond reading the file: `sources.py` resolves
URIs and globs to shard sets.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from smelt.errors import ConfigError
from smelt.storage import has_glob

OnExhausted = Literal["repeat", "end_phase"]
ON_EXHAUSTED: tuple[str, ...] = ("repeat", "end_phase")
_TOKEN_COUNT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKmMbBtT]?)\s*$")
_SCALE = {"": 1, "k": 10**3, "m": 10**6, "b": 10**9, "t": 10**12}


@dataclass(frozen=True)
class SourceSpec:
    """One source as the user wrote it: a shard set URI or a glob, and its weight if given."""

    uri: str
    weight: float | None = None

    @property
    def is_glob(self) -> bool:
        return has_glob(self.uri)

    def __str__(self) -> str:
        return self.uri if self.weight is None else f"{self.uri}={self.weight:g}"


@dataclass(frozen=True)
class PhaseSpec:
    """One phase of the plan; `seq_len` and `on_exhausted` None mean the run's defaults."""

    name: str
    sources: tuple[SourceSpec, ...]
    until_tokens: int | None = None
    seq_len: int | None = None
    on_exhausted: OnExhausted | None = None


@dataclass(frozen=True)
class DataPlan:
    """The phases of a run, in order; `origin` names where they were written (for errors)."""

    phases: tuple[PhaseSpec, ...]
    origin: str


# ---- --shards URI[=WEIGHT] ------------------------------------------------------------------


def parse_source(text: str, where: str = "--shards") -> SourceSpec:
    """`URI` or `URI=WEIGHT`. The text after the last `=` is a weight only when it is a number,
    so a URI such as `s3://lake/date=2026-11-30` stays whole (write `URI/` to keep a trailing
    `=NUMBER` in a URI)."""
    if not text or not text.strip():
        raise ConfigError(f"{where}: empty source; give a shard set URI, optionally URI=WEIGHT")
    uri, sep, tail = text.rpartition("=")
    if not sep or not uri:
        return SourceSpec(text)
    try:
        weight = float(tail)
    except ValueError:
        return SourceSpec(text)
    return SourceSpec(uri, check_weight(weight, f"{where} {text}"))


def check_weight(weight: float, where: str) -> float:
    if not math.isfinite(weight) or weight <= 0:
        raise ConfigError(
            f"{where}: weight {weight:g} must be a positive number (weights are normalised: "
            "0.7 and 0.3, or 7 and 3); leave a source out instead of giving it weight 0"
        )
    return weight


def check_sources(sources: tuple[SourceSpec, ...], where: str) -> None:
    """Every source of a phase weighted or none; no URI twice."""
    if not sources:
        raise ConfigError(f"{where}: no sources; give at least one shard set URI")
    weighted = [s for s in sources if s.weight is not None]
    if weighted and len(weighted) != len(sources):
        bare = ", ".join(s.uri for s in sources if s.weight is None)
        raise ConfigError(
            f"{where}: {bare} has no weight while other sources have one; give every source "
            "a weight (URI=WEIGHT) or none (then sources are drawn in proportion to their tokens)"
        )
    seen: set[str] = set()
    for source in sources:
        if source.uri in seen:
            raise ConfigError(f"{where}: source {source.uri} is listed twice; list it once")
        seen.add(source.uri)


def plan_from_shards(entries: list[str]) -> DataPlan:
    """One phase of the `--shards` sources, lasting the whole run."""
    sources = tuple(parse_source(entry) for entry in entries)
    check_sources(sources, "--shards")
    return DataPlan((PhaseSpec("phase 1", sources),), "--shards")


# ---- --data FILE ----------------------------------------------------------------------------


def parse_token_count(value: Any, where: str) -> int:
    """An int, or text such as `2_000_000`, `500M`, `1.5B` (k, M, B, T: powers of 1000)."""
    if isinstance(value, bool):
        raise ConfigError(f"{where}: {value!r} is not a token count")
    if isinstance(value, int):
        count = value
    else:
        match = _TOKEN_COUNT.match(str(value).replace("_", ""))
        if not match:
            raise ConfigError(
                f"{where}: {value!r} is not a token count; write e.g. 2000000, 2_000_000 or 2M"
            )
        count = round(float(match.group(1)) * _SCALE[match.group(2).lower()])
    if count <= 0:
        raise ConfigError(f"{where}: {value!r} must be a positive number of tokens")
    return count


_Weight = Annotated[float, Field(gt=0, allow_inf_nan=False)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _SourceEntry(_Model):
    uri: str = Field(min_length=1)
    weight: _Weight | None = None


class _PhaseEntry(_Model):
    name: str | None = None
    sources: list[_SourceEntry | str] = Field(min_length=1)
    until_tokens: int | str | None = None
    seq_len: Annotated[int, Field(gt=0)] | None = None
    on_exhausted: OnExhausted | None = None


class _DataFile(_Model):
    sources: list[_SourceEntry | str] | None = None
    phases: list[_PhaseEntry] | None = None
    on_exhausted: OnExhausted | None = None
    seq_len: Annotated[int, Field(gt=0)] | None = None


def plan_from_dict(data: Any, origin: str) -> DataPlan:
    """Check a data file's content (see the module docstring) and build its plan."""
    if not isinstance(data, dict):
        raise ConfigError(f"{origin}: expected a table with `sources` or `phases`")
    try:
        parsed = _DataFile.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{origin}: {_describe(exc)}") from None
    if (parsed.sources is None) == (parsed.phases is None):
        raise ConfigError(
            f"{origin}: give either `sources` (one phase) or `phases` (a list), not "
            f"{'both' if parsed.sources is not None else 'neither'}"
        )
    entries = parsed.phases or [_PhaseEntry(sources=parsed.sources or [])]
    phases = []
    for number, entry in enumerate(entries, start=1):
        name = entry.name or f"phase {number}"
        where = f"{origin}: phase {name!r}"
        sources = tuple(_source(item, where) for item in entry.sources)
        check_sources(sources, where)
        until = None
        if entry.until_tokens is not None:
            until = parse_token_count(entry.until_tokens, f"{where} until_tokens")
        phases.append(
            PhaseSpec(
                name,
                sources,
                until,
                entry.seq_len or parsed.seq_len,
                entry.on_exhausted or parsed.on_exhausted,
            )
        )
    _check_phase_ends(phases, origin)
    return DataPlan(tuple(phases), origin)


def _source(item: _SourceEntry | str, where: str) -> SourceSpec:
    if isinstance(item, str):
        return parse_source(item, where)
    return SourceSpec(item.uri, item.weight)


def _check_phase_ends(phases: list[PhaseSpec], origin: str) -> None:
    """Every phase but the last ends at a token count, and the counts increase."""
    names = [p.name for p in phases]
    if len(set(names)) != len(names):
        raise ConfigError(f"{origin}: phase names must be unique, got {names}")
    previous = 0
    for phase in phases[:-1]:
        if phase.until_tokens is None:
            raise ConfigError(
                f"{origin}: phase {phase.name!r} has no until_tokens; every phase but the "
                "last must end at a token count"
            )
    for phase in phases:
        if phase.until_tokens is None:
            continue
        if phase.until_tokens <= previous:
            raise ConfigError(
                f"{origin}: phase {phase.name!r} ends at {phase.until_tokens:,} tokens, not "
                f"after the previous phase's {previous:,}; until_tokens counts from the start "
                "of the run and must increase from phase to phase"
            )
        previous = phase.until_tokens


def _describe(exc: ValidationError) -> str:
    """The first problem of a data file in one line: where, what was found, what is allowed."""
    error = exc.errors(include_url=False)[0]
    where = ".".join(str(part) for part in error["loc"])
    if error["type"] == "extra_forbidden":
        return (
            f"unknown key {where}; allowed: sources, phases, on_exhausted, seq_len (and in a "
            "phase: name, sources, until_tokens, seq_len, on_exhausted)"
        )
    found = f" = {error['input']!r}" if "input" in error else ""
    return f"{where}{found}: {error['msg']}"


def load_data_file(uri: str) -> DataPlan:
    """The plan in a YAML (`.yaml`/`.yml`) or TOML (`.toml`) file, local or on S3."""
    from smelt.corpus.config import read_settings_file

    return plan_from_dict(read_settings_file(uri, "data file"), f"data file {uri}")
