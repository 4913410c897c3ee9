"""Named model sizes: smelt's own (`test`, `small`, `1b`) and the seed projects' published tables.

All presets default to smelt's tokenizer vocabulary (16384); `smelt train` passes the vocabulary
of the shards' tokenizer through `get_preset(name, vocab_size=...)`.

`REFERENCE_COUNTS` records, for each preset, the parameter count its source publishes and the
vocabulary that count was measured at. Because every model here either ties its embeddings or
states its vocabulary, the comparison (tests/model/test_presets.py) rebuilds the preset at the
source's vocabulary and compares total parameters, which accounts for the embedding exactly
instead of guessing a non-embedding share. Published numbers are rounded ("~70M"), hence a
tolerance of a few percent.
"""

from __future__ import annotations

from typing import Any

from smelt.errors import ConfigError
from smelt.model.config import ModelConfig

DEFAULT_VOCAB = 16384


def _cfg(**kwargs: Any) -> ModelConfig:
    return ModelConfig(**{"vocab_size": DEFAULT_VOCAB, **kwargs})


PRESETS: dict[str, ModelConfig] = {
    # smelt's own. `test`: ~6.2M at vocab 16384 ("about 6M", trains on a CPU in
    # seconds); GQA + QK-norm so the smallest model exercises the same paths as the big ones.
    "test": _cfg(
        d_model=256,
        n_layers=4,
        n_heads=4,
        n_kv_heads=2,
        ffn_hidden=384,
        max_seq_len=512,
        qk_norm=True,
    ),
    # GPT-2 small's shape (12 x 768, 12 heads, 1024 context; SwiGLU 2048 has the parameters of
    # GELU 3072): 124M at GPT-2's vocab 50257, 98M at smelt's default 16384. GPU benchmark model.
    "small": _cfg(d_model=768, n_layers=12, n_heads=12, ffn_hidden=2048, max_seq_len=1024),
    # Skylar (2sophia/skylar README, preset table): GQA + QK-norm, Qwen3-style.
    "skylar-test": _cfg(
        d_model=128,
        n_layers=4,
        n_heads=4,
        ffn_hidden=256,
        max_seq_len=4096,
        rope_theta=1e5,
        qk_norm=True,
    ),
    "skylar-small": _cfg(
        d_model=512,
        n_layers=8,
        n_heads=8,
        n_kv_heads=4,
        ffn_hidden=1024,
        max_seq_len=8192,
        rope_theta=5e5,
        qk_norm=True,
    ),
    "skylar-small-plus": _cfg(
        d_model=640,
        n_layers=10,
        n_heads=10,
        n_kv_heads=5,
        ffn_hidden=1792,
        max_seq_len=16384,
        rope_theta=1e6,
        qk_norm=True,
    ),
    "skylar-medium": _cfg(
        d_model=768,
        n_layers=12,
        n_heads=12,
        n_kv_heads=4,
        ffn_hidden=2048,
        max_seq_len=16384,
        rope_theta=1e6,
        qk_norm=True,
    ),
    "skylar-medium-plus": _cfg(
        d_model=1024,
        n_layers=18,
        n_heads=16,
        n_kv_heads=4,
        ffn_hidden=2816,
        max_seq_len=16384,
        rope_theta=1e6,
        qk_norm=True,
    ),
    "skylar-large": _cfg(
        d_model=1024,
        n_layers=28,
        n_heads=16,
        n_kv_heads=4,
        ffn_hidden=2816,
        max_seq_len=16384,
        rope_theta=5e6,
        qk_norm=True,
    ),
    "skylar-gold": _cfg(
        d_model=1280,
        n_layers=20,
        n_heads=10,
        n_kv_heads=2,
        ffn_hidden=3456,
        max_seq_len=16384,
        rope_theta=1e6,
        qk_norm=True,
    ),
    "1b": _cfg(
        d_model=1536,
        n_layers=32,
        n_heads=16,
        n_kv_heads=4,
        ffn_hidden=5120,
        max_seq_len=32768,
        rope_theta=5e6,
        qk_norm=True,
    ),
    # Pion (Supergoatscriptguy/Pion README, "Model Sizes"): GQA, QK-norm, SwiGLU, theta 1e4,
    # 2048-token shards. Pion defaults to attention soft-capping but recommends --no_soft_cap
    # above nano; set attn_softcap=50.0 (Gemma 2's value) to train with it.
    "pion-nano": _cfg(
        d_model=384,
        n_layers=6,
        n_heads=6,
        n_kv_heads=2,
        ffn_hidden=1024,
        max_seq_len=2048,
        qk_norm=True,
    ),
    "pion-micro": _cfg(
        d_model=512,
        n_layers=12,
        n_heads=8,
        n_kv_heads=2,
        ffn_hidden=1408,
        max_seq_len=2048,
        qk_norm=True,
    ),
    "pion-small": _cfg(
        d_model=640,
        n_layers=16,
        n_heads=10,
        n_kv_heads=2,
        ffn_hidden=1792,
        max_seq_len=2048,
        qk_norm=True,
    ),
    "pion-base": _cfg(
        d_model=768,
        n_layers=20,
        n_heads=12,
        n_kv_heads=4,
        ffn_hidden=2048,
        max_seq_len=2048,
        qk_norm=True,
    ),
    "pion-large": _cfg(
        d_model=1024,
        n_layers=24,
        n_heads=16,
        n_kv_heads=4,
        ffn_hidden=2816,
        max_seq_len=2048,
        qk_norm=True,
    ),
    "pion-xl": _cfg(
        d_model=1536,
        n_layers=28,
        n_heads=16,
        n_kv_heads=4,
        ffn_hidden=4096,
        max_seq_len=2048,
        qk_norm=True,
    ),
    # Pyr (Pyr README, "Architecture"): BitNet b1.58, ReLU^2, 16 x 768, 12 heads / 4 KV, 16k
    # vocab, 1024 context (phase 2). Pyr does not publish its FFN width: 3968 (a multiple of
    # 128) is the two-matrix ReLU^2 width that reproduces the published 135M with tied embeddings.
    "pyr-135m": _cfg(
        d_model=768,
        n_layers=16,
        n_heads=12,
        n_kv_heads=4,
        ffn_hidden=3968,
        max_seq_len=1024,
        activation="relu2",
        bitnet=True,
    ),
    # ParchmentLM (model card, "Architecture"): LLaMA-style, 12 x 768, 12 heads, SwiGLU 2048,
    # 1024 context, tied embeddings, no QK-norm (exports as LlamaForCausalLM).
    "parchment-166m": _cfg(d_model=768, n_layers=12, n_heads=12, ffn_hidden=2048, max_seq_len=1024),
}

# preset -> (published parameter count, vocabulary it was counted at, source)
REFERENCE_COUNTS: dict[str, tuple[float, int, str]] = {
    "test": (6e6, DEFAULT_VOCAB, "about 6M parameters"),
    "small": (124e6, 50257, "GPT-2 small, Radford et al. 2019"),
    "skylar-test": (6e6, 40960, "Skylar preset table (default vocab 40,960)"),
    "skylar-small": (40e6, 40960, "Skylar preset table"),
    "skylar-small-plus": (70e6, 40960, "Skylar preset table"),
    "skylar-medium": (107e6, 40960, "Skylar preset table"),
    "skylar-medium-plus": (236e6, 32768, "Skylar results (released model uses vocab 32,768)"),
    "skylar-large": (358e6, 40960, "Skylar preset table"),
    "skylar-gold": (393e6, 40960, "Skylar preset table"),
    "1b": (1.0e9, 40960, "Skylar preset table, 1B"),
    "pion-nano": (29e6, 50257, "Pion model sizes (Pile tokenizer, ~50K vocab)"),
    "pion-micro": (60e6, 50257, "Pion model sizes"),
    "pion-small": (103e6, 50257, "Pion model sizes"),
    "pion-base": (165e6, 50257, "Pion model sizes"),
    "pion-large": (322e6, 50257, "Pion model sizes"),
    "pion-xl": (771e6, 50257, "Pion model sizes"),
    "pyr-135m": (135e6, 16384, "Pyr README (16k vocab)"),
    "parchment-166m": (166e6, 100277, "ParchmentLM card (cl100k_base, 100,277 tokens)"),
}


def get_preset(name: str, vocab_size: int | None = None, **overrides: Any) -> ModelConfig:
    """The preset `name` (case-insensitive), optionally at another vocabulary or with fields
    overridden (e.g. `max_seq_len=256`). Raises ConfigError listing the valid names."""
    key = name.strip().lower()
    if key not in PRESETS:
        raise ConfigError(
            f"unknown model preset {name!r}; valid presets: {', '.join(sorted(PRESETS))}"
        )
    config = PRESETS[key]
    changes = dict(overrides)
    if vocab_size is not None:
        changes["vocab_size"] = vocab_size
    return config.replace(**changes) if changes else config
