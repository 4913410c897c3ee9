"""Which architecture a run trains: the preset with `--model-override`s, its vocabulary
following the shards' unless set; or, for a run started from a base (`--init-from`), the
base's own, which nothing may change. Each mismatch is a `ConfigError` naming the flag."""

from __future__ import annotations

from smelt.errors import ConfigError
from smelt.model.config import ModelConfig
from smelt.model.presets import DEFAULT_VOCAB, get_preset
from smelt.training import warm_start
from smelt.training.config import TrainConfig


def build_model_config(
    config: TrainConfig, vocab_size: int, base: warm_start.BaseCheckpoint | None = None
) -> ModelConfig:
    """The preset with overrides; its vocabulary follows the shards unless set explicitly.
    A run started from a base (`--init-from`) has the base's architecture."""
    if base is not None:
        return _base_model_config(config, vocab_size, base)
    overrides = dict(config.model_overrides)
    explicit = overrides.pop("vocab_size", None)
    base = get_preset(config.preset, **overrides)
    if explicit is not None:
        if explicit < vocab_size:
            raise ConfigError(
                f"model vocab_size {explicit} is smaller than the shards' "
                f"vocabulary ({vocab_size}); drop the override or raise it"
            )
        return base.replace(vocab_size=explicit)
    if base.vocab_size not in (DEFAULT_VOCAB, vocab_size) and base.vocab_size < vocab_size:
        raise ConfigError(
            f"preset {config.preset!r} has vocab_size {base.vocab_size} < the shards' {vocab_size}"
        )
    model_config = base.replace(vocab_size=vocab_size)
    if config.seq_len > model_config.max_seq_len:
        raise ConfigError(
            f"--seq-len {config.seq_len} exceeds the preset's max_seq_len "
            f"{model_config.max_seq_len}; lower it or override max_seq_len"
        )
    return model_config


def _base_model_config(
    config: TrainConfig, vocab_size: int, base: warm_start.BaseCheckpoint
) -> ModelConfig:
    model_config = base.model_config
    if config.model_overrides:
        raise ConfigError(
            f"--model-override cannot change the architecture of the base {base.source}; drop it"
        )
    if model_config.vocab_size < vocab_size:
        raise ConfigError(
            f"the base {base.source} has vocab_size {model_config.vocab_size} < the data's "
            f"{vocab_size}; build the data with the base's tokenizer"
        )
    if config.seq_len > model_config.max_seq_len:
        raise ConfigError(
            f"--seq-len {config.seq_len} exceeds the max_seq_len {model_config.max_seq_len} of "
            f"the base {base.source}; lower --seq-len"
        )
    return model_config
