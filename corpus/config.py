"""Corpus build configuration: one object, defaults with their sources, loadable from TOML/YAML.

Each stage owns one section. A config file overrides any subset, e.g.

    [filters.gopher_quality]
    min_doc_words = 30

    [filters.c4]
    enabled = false

Unknown keys are errors (a typo must not silently fall back to a default).
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field
from typing import Any

from smelt.errors import ConfigError


@dataclass(frozen=True)
class ReaderConfig:
    """How inputs are read."""

    text_field: str = "text"
    id_field: str = "id"
    url_field: str = "url"
    html_max_bytes: int = 5_000_000  # larger HTML pages are quarantined, not parsed
    html_timeout_s: float = 10.0  # per-document extraction time limit
    text_max_bytes: int = 50_000_000  # larger plain-text files are quarantined
    favor_precision: bool = True  # trafilatura: drop more boilerplate
    html_fast: bool = True  # trafilatura `fast`: skip its fallback extractors (~2x)


@dataclass(frozen=True)
class NormalizeConfig:
    """Text normalization before filtering."""

    fix_mojibake: bool = True  # ftfy
    unicode_form: str = "NFC"
    strip_control_chars: bool = True
    collapse_whitespace: bool = True


@dataclass(frozen=True)
class GopherQualityConfig:
    """Gopher quality rules (Rae et al. 2021, "Scaling Language Models", appendix A)."""

    enabled: bool = True
    min_doc_words: int = 50
    max_doc_words: int = 100_000
    min_avg_word_length: float = 3.0
    max_avg_word_length: float = 10.0
    max_symbol_word_ratio: float = 0.1
    max_bullet_lines_ratio: float = 0.9
    max_ellipsis_lines_ratio: float = 0.3
    max_non_alpha_words_ratio: float = 0.8
    min_stop_words: int = 2


@dataclass(frozen=True)
class GopherRepetitionConfig:
    """Gopher repetition rules (Rae et al. 2021, table A1)."""

    enabled: bool = True
    dup_line_frac: float = 0.3
    dup_para_frac: float = 0.3
    dup_line_char_frac: float = 0.2
    dup_para_char_frac: float = 0.2
    top_n_grams: tuple[tuple[int, float], ...] = ((2, 0.2), (3, 0.18), (4, 0.16))
    dup_n_grams: tuple[tuple[int, float], ...] = (
        (5, 0.15),
        (6, 0.14),
        (7, 0.13),
        (8, 0.12),
        (9, 0.11),
        (10, 0.10),
    )


@dataclass(frozen=True)
class C4Config:
    """C4 line and document rules (Raffel et al. 2020, section 2.2)."""

    enabled: bool = True
    min_words_per_line: int = 3
    max_word_length: int = 1000
    min_num_sentences: int = 5
    require_terminal_punct: bool = True
    remove_citations: bool = True
    filter_lorem_ipsum: bool = True
    filter_javascript: bool = True
    filter_curly_bracket: bool = True
    filter_policy: bool = True


@dataclass(frozen=True)
class FineWebConfig:
    """FineWeb line rules (Penedo et al. 2024, "The FineWeb Datasets")."""

    enabled: bool = True
    line_punct_thr: float = 0.12
    line_punct_exclude_zero: bool = False
    short_line_thr: float = 0.67
    short_line_length: int = 30
    char_duplicates_ratio: float = 0.01
    new_line_ratio: float = 0.3


@dataclass(frozen=True)
class FilterConfig:
    """All quality filters, in the order they run."""

    min_chars: int = 1  # empty documents are filtered as `empty`
    gopher_repetition: GopherRepetitionConfig = field(default_factory=GopherRepetitionConfig)
    gopher_quality: GopherQualityConfig = field(default_factory=GopherQualityConfig)
    c4: C4Config = field(default_factory=C4Config)
    fineweb: FineWebConfig = field(default_factory=FineWebConfig)


@dataclass(frozen=True)
class DedupConfig:
    """Exact and MinHash near-duplicate removal (see corpus/dedup/minhash.py for the S-curve).

    20 bands x 8 rows catch a pair at Jaccard 0.8 with p = 0.975 and one at 0.5 with p = 0.075
    before verification (~2e-8 after); datatrove's 14 x 8 catches 0.924 at 0.8.
    """

    exact: bool = True
    near: bool = True
    ngram: int = 5  # word n-gram shingles (datatrove, FineWeb: 5)
    num_bands: int = 20
    rows_per_band: int = 8
    jaccard_threshold: float = 0.7  # candidate pairs verified by estimated Jaccard
    bucket_partitions: int = 16  # minimum number of band-key ranges (pair tasks)
    max_range_rows: int = 4_000_000  # more ranges when a range would hold more band rows
    seed: int = 1


@dataclass(frozen=True)
class PiiConfig:
    """PII redaction with presidio (see corpus/pii/)."""

    enabled: bool = True
    entities: tuple[str, ...] = (
        "EMAIL_ADDRESS",
        "PHONE_NUMBER",
        "CREDIT_CARD",
        "IBAN_CODE",
        "IP_ADDRESS",
        "US_SSN",
        "PERSON",
    )
    score_threshold: float = 0.4  # presidio scores phones 0.4 without context words
    ner: bool = True
    placeholders: dict[str, str] = field(
        default_factory=lambda: {
            "EMAIL_ADDRESS": "<EMAIL>",
            "PHONE_NUMBER": "<PHONE>",
            "CREDIT_CARD": "<CREDIT_CARD>",
            "IBAN_CODE": "<IBAN>",
            "IP_ADDRESS": "<IP_ADDRESS>",
            "US_SSN": "<US_SSN>",
            "PERSON": "<PERSON>",
        }
    )


@dataclass(frozen=True)
class CorpusConfig:
    """Everything `smelt corpus build` can be told."""

    partition_bytes: int = 64 * 1024 * 1024  # bound on raw input bytes per partition
    readers: ReaderConfig = field(default_factory=ReaderConfig)
    normalize: NormalizeConfig = field(default_factory=NormalizeConfig)
    filters: FilterConfig = field(default_factory=FilterConfig)
    dedup: DedupConfig = field(default_factory=DedupConfig)
    pii: PiiConfig = field(default_factory=PiiConfig)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (stored beside the corpus, hashed to tell configs apart)."""
        return dataclasses.asdict(self)


def _build(cls: type, data: dict[str, Any], where: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'config'}: expected a table of settings, got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"unknown setting(s) {', '.join(where + k for k in unknown)}; "
            f"valid: {', '.join(sorted(fields))}"
        )
    values = {}
    for name, value in data.items():
        default = getattr(cls(), name)
        if dataclasses.is_dataclass(default):
            values[name] = _build(type(default), value, f"{where}{name}.")
        elif isinstance(default, tuple) and isinstance(value, list):
            values[name] = tuple(tuple(v) if isinstance(v, list) else v for v in value)
        else:
            values[name] = value
    return cls(**values)


def config_from_dict(data: dict[str, Any]) -> CorpusConfig:
    """Build a `CorpusConfig` from nested dicts, rejecting unknown keys."""
    return _build(CorpusConfig, data, "")


def load_config(path: str | None) -> CorpusConfig:
    """Defaults, overridden by a TOML (`.toml`) or YAML (`.yaml`/`.yml`) file when given."""
    if not path:
        return CorpusConfig()
    if not os.path.exists(path):
        raise ConfigError(f"config file not found: {path}")
    try:
        if path.endswith(".toml"):
            with open(path, "rb") as fh:
                data = tomllib.load(fh)
        elif path.endswith((".yaml", ".yml")):
            import yaml

            with open(path, encoding="utf-8") as fh:
                data = yaml.safe_load(fh) or {}
        else:
            raise ConfigError(f"config file {path}: use .toml, .yaml or .yml")
    except (tomllib.TOMLDecodeError, ValueError) as exc:
        raise ConfigError(f"config file {path} is not valid: {exc}") from None
    return config_from_dict(data)
