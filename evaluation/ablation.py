"""Data ablations: which corpus recipe makes the better model, measured the way FineWeb, DCLM and
SmolLM decide data questions: train the same small proxy model on each variant (same
tokenizer, preset, token budget and seeds), evaluate each on the same items, compare.

The recipe is a small YAML or TOML file (`smelt ablate --config ablation.yaml`):

    name: c4-filter                     # names the flow runs and the report
    base:                               # the reference corpus recipe
      inputs: [./raw]                   # files, directories or s3:// prefixes
      config: corpus.toml               # optional corpus config file
      overrides: {pii: {ner: false}}    # optional inline corpus config
    variants:                           # each one changes the base
      no-c4:
        overrides: {filters: {c4: {enabled: false}}}
      more-data:
        inputs: [./raw, ./raw-extra]
    tokenizer: {vocab_size: 8192, train_on: base}   # one tokenizer for every variant
    shards: {val_fraction: 0.02}
    proxy: {preset: test, tokens: 2000000, batch_size: 8, seq_len: 256, seeds: 2}
    eval:
      tasks: {hellaswag: ./hellaswag.jsonl}
      texts: {heldout: ./heldout.txt}
      rank_by: hellaswag/acc_norm       # default: the mean acc_norm over the tasks

A variant's inputs and config file replace the base's; its overrides are merged into the base's
(nested keys win). Relative local paths are relative to the recipe file. `seeds: N` means seeds
0..N-1 (or give a list); with two or more seeds the report's noise is the spread over seeds,
with one it is the binomial standard error of each accuracy.

`AblationLayout` spells every output path; `evaluation.ablation_report` turns the per-seed
results into the ranked report (differences from the base, with their noise).
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from smelt import storage
from smelt.errors import ConfigError
from smelt.prep.defaults import DEFAULT_SAMPLE_BYTES, DEFAULT_SHARD_TOKENS
from smelt.training.config import TrainConfig

BASE = "base"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
MEAN_ACC_NORM = "tasks/mean_acc_norm"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Recipe(_Strict):
    """How one corpus is built: its inputs, a corpus config file, inline config overrides."""

    inputs: list[str] | None = Field(None, description="files, directories or s3:// prefixes")
    config: str | None = Field(None, description="corpus TOML/YAML config file")
    overrides: dict[str, Any] = Field(default_factory=dict, description="inline corpus config")


class TokenizerPlan(_Strict):
    """The one tokenizer every variant is tokenized with."""

    vocab_size: int = Field(8192, ge=512, le=2**20)
    sample_bytes: int = Field(DEFAULT_SAMPLE_BYTES, gt=0)
    train_on: str = Field(BASE, description="the variant whose corpus trains it")
    uri: str | None = Field(None, description="use this trained tokenizer instead")


class ShardsPlan(_Strict):
    val_fraction: float = Field(0.02, ge=0.0, lt=1.0)
    shard_tokens: int = Field(DEFAULT_SHARD_TOKENS, gt=0)


class ProxyPlan(_Strict):
    """The proxy model: the same preset, budget and seeds for every variant."""

    preset: str = "test"
    tokens: int = Field(2_000_000, gt=0, description="training tokens per run")
    batch_size: int = Field(8, gt=0)
    seq_len: int = Field(256, gt=0)
    seeds: list[int] = Field(default_factory=lambda: [0], description="a count or a list")
    overrides: dict[str, Any] = Field(
        default_factory=dict, description='other TrainConfig fields, e.g. {"lr": 1e-3}'
    )

    @field_validator("seeds", mode="before")
    @classmethod
    def _count(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            if value < 1:
                raise ValueError("seeds must be at least 1")
            return list(range(value))
        return value

    @property
    def max_steps(self) -> int:
        """Optimizer steps that cover the token budget (single process)."""
        return max(1, math.ceil(self.tokens / (self.batch_size * self.seq_len)))

    def train_config(self, shards: str, tokenizer: str, output: str, seed: int) -> TrainConfig:
        """The proxy run of one variant and seed: only the data and the seed differ."""
        steps = self.max_steps
        fields = {
            "shards": shards,
            "tokenizer": tokenizer,
            "output": output,
            "preset": self.preset,
            "max_steps": steps,
            "batch_size": self.batch_size,
            "seq_len": self.seq_len,
            "seed": seed,
            "warmup_steps": max(1, steps // 10),
            "checkpoint_every": steps,
            "eval_every": steps,
        }
        try:
            return TrainConfig(**{**fields, **self.overrides})
        except TypeError as exc:
            raise ConfigError(f"proxy.overrides: {exc}; use TrainConfig field names") from None


class EvalPlan(_Strict):
    tasks: dict[str, str] = Field(default_factory=dict, description="NAME -> task file")
    texts: dict[str, str] = Field(default_factory=dict, description="NAME -> text file")
    limit: int | None = Field(None, gt=0, description="first N items of each")
    batch_size: int = Field(32, gt=0)
    val_batches: int = Field(20, ge=0)
    rank_by: str | None = Field(None, description="metric to rank by, e.g. hellaswag/acc_norm")


class AblationConfig(_Strict):
    """A data ablation: a base recipe, its variants, and how every variant is judged."""

    name: str = "ablation"
    output: str | None = Field(None, description="where everything goes (or --output)")
    base: Recipe
    variants: dict[str, Recipe] = Field(default_factory=dict)
    tokenizer: TokenizerPlan = Field(default_factory=TokenizerPlan)
    shards: ShardsPlan = Field(default_factory=ShardsPlan)
    proxy: ProxyPlan = Field(default_factory=ProxyPlan)
    eval: EvalPlan = Field(default_factory=EvalPlan)

    @model_validator(mode="after")
    def _check(self) -> AblationConfig:
        if not self.base.inputs:
            raise ValueError("base.inputs: the base recipe needs at least one input")
        for name in (self.name, *self.variants):
            if not _NAME.match(name):
                raise ValueError(
                    f"name {name!r}: use lowercase letters, digits, '-', '_' or '.' (it names "
                    "folders and flow runs)"
                )
        if BASE in self.variants:
            raise ValueError(f"variants: {BASE!r} is the base recipe's name; rename the variant")
        if self.tokenizer.train_on not in self.recipes():
            raise ValueError(
                f"tokenizer.train_on {self.tokenizer.train_on!r} is not a variant "
                f"({', '.join(self.recipes())})"
            )
        if not (self.eval.tasks or self.eval.texts or self.eval.val_batches):
            raise ValueError("eval: give tasks or texts (or val_batches) to compare on")
        return self

    def recipes(self) -> dict[str, Recipe]:
        """Every variant's full recipe, the base first."""
        full = {BASE: self.base}
        for name, variant in self.variants.items():
            full[name] = Recipe(
                inputs=variant.inputs or self.base.inputs,
                config=variant.config or self.base.config,
                overrides=deep_merge(self.base.overrides, variant.overrides),
            )
        return full

    def rank_metric(self) -> str:
        """The metric the report ranks by (see `rank_by`)."""
        if self.eval.rank_by:
            return self.eval.rank_by
        if self.eval.tasks:
            return MEAN_ACC_NORM
        if self.eval.texts:
            return f"{next(iter(self.eval.texts))}/bits_per_byte"
        return "val_loss"


def deep_merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """`overrides` over `base`, nested dicts merged key by key."""
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_ablation(path: str) -> AblationConfig:
    """Read a YAML or TOML recipe; relative local paths become relative to its folder."""
    if not os.path.isfile(path):
        raise ConfigError(f"ablation config not found: {path}")
    import yaml

    if not path.endswith((".toml", ".yaml", ".yml")):
        raise ConfigError(f"ablation config {path}: use .yaml, .yml or .toml")
    try:
        if path.endswith(".toml"):
            with open(path, "rb") as fh:
                data = tomllib.load(fh)
        else:
            with open(path, encoding="utf-8") as fh:
                data = yaml.safe_load(fh) or {}
    except (tomllib.TOMLDecodeError, yaml.YAMLError, ValueError) as exc:
        raise ConfigError(f"ablation config {path} is not valid: {exc}") from None
    return parse_ablation(_anchor(data, os.path.dirname(os.path.abspath(path))), path)


def parse_ablation(data: Any, where: str = "ablation config") -> AblationConfig:
    """Validate a recipe given as a dict; ConfigError names the field at fault."""
    try:
        return AblationConfig.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise ConfigError(f"{where}: {field}: {first['msg']}") from None


def _anchor(data: Any, folder: str) -> Any:
    """Relative local paths (inputs, config files, task/text files, output) -> absolute."""

    def local(uri: str) -> str:
        if "://" in uri or uri == "hub" or os.path.isabs(uri):
            return uri
        return os.path.normpath(os.path.join(folder, os.path.expanduser(uri)))

    if not isinstance(data, dict):
        return data
    data = dict(data)
    if isinstance(data.get("output"), str):
        data["output"] = local(data["output"])
    recipes = [data.get("base")] + list((data.get("variants") or {}).values())
    for recipe in recipes:
        if isinstance(recipe, dict):
            if isinstance(recipe.get("inputs"), list):
                recipe["inputs"] = [local(u) if isinstance(u, str) else u for u in recipe["inputs"]]
            if isinstance(recipe.get("config"), str):
                recipe["config"] = local(recipe["config"])
    for section, key in (("eval", "tasks"), ("eval", "texts"), ("tokenizer", "uri")):
        part = data.get(section)
        if isinstance(part, dict) and isinstance(part.get(key), dict):
            part[key] = {n: local(u) if isinstance(u, str) else u for n, u in part[key].items()}
        elif isinstance(part, dict) and isinstance(part.get(key), str):
            part[key] = local(part[key])
    return data


# ---- where everything goes -----------------------------------------------------------------


@dataclass(frozen=True)
class AblationLayout:
    """The outputs of one ablation under `root`."""

    root: str

    @property
    def tokenizer(self) -> str:
        return storage.join(self.root, "tokenizer")

    def variant(self, name: str) -> str:
        return storage.join(self.root, "variants", name)

    def corpus(self, name: str) -> str:
        return storage.join(self.variant(name), "corpus")

    def shards(self, name: str) -> str:
        return storage.join(self.variant(name), "shards")

    def run(self, name: str, data_key: str, seed: int) -> str:
        """A proxy run trains on one data set: rebuilt shards (another recipe, another
        tokenizer) start new runs instead of resuming old ones."""
        return storage.join(self.variant(name), "runs", f"{data_key[:10]}-seed-{seed}")

    def eval(self, name: str, data_key: str, seed: int) -> str:
        return storage.join(self.variant(name), "eval", f"{data_key[:10]}-seed-{seed}.json")

    @property
    def report_json(self) -> str:
        return storage.join(self.root, "report.json")

    @property
    def report_md(self) -> str:
        return storage.join(self.root, "report.md")

    @property
    def report_csv(self) -> str:
        return storage.join(self.root, "report.csv")

    @property
    def report_png(self) -> str:
        return storage.join(self.root, "report.png")


def run_is_finished(config: TrainConfig) -> bool:
    """Whether `config.output` holds this very run, trained to `max_steps`."""
    from smelt.training.manager import CheckpointManager
    from smelt.training.preflight import recorded_config

    run = CheckpointManager(config.output, cache_dir=config.cache_dir)
    recorded = recorded_config(run)
    if recorded is None or config.differences(recorded):
        return False
    newest = run.newest()
    return newest is not None and newest >= config.max_steps
