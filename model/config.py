"""`ModelConfig`: the one object that fixes a decoder's shape and features.

Every module in `smelt.model` reads its hyperparameters from here, checkpoints store it as JSON
(`to_dict`/`from_dict`), and HF export translates it to a transformers config. Validation happens
at construction so a bad preset or a hand-edited config.json fails with a message that names the
field and the fix, never later as a shape error deep inside a matmul.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from smelt.errors import ConfigError

ACTIVATIONS = ("swiglu", "relu2")


def default_ffn_hidden(d_model: int, activation: str, multiple_of: int = 64) -> int:
    """FFN width when a config does not give one.

    SwiGLU: 8/3 * d_model rounded up to `multiple_of` (LLaMA, Touvron et al. 2023), which keeps
    the three-matrix FFN at the parameter count of a 4 * d_model two-matrix MLP.
    ReLU^2: 4 * d_model (Primer, So et al. 2021; two matrices).
    """
    raw = 8 * d_model / 3 if activation == "swiglu" else 4 * d_model
    return multiple_of * math.ceil(raw / multiple_of)


@dataclass(frozen=True)
class ModelConfig:
    """Shape and feature switches of a decoder-only transformer (pre-norm, RoPE, tied head).

    Defaults follow LLaMA-style small models; sources: RoPE theta 10000 (Su et al. 2021),
    init std 0.02 (GPT-2), RMSNorm eps 1e-5 (LLaMA 2).
    """

    vocab_size: int = 16384
    d_model: int = 256
    n_layers: int = 4
    n_heads: int = 4
    n_kv_heads: int | None = None  # None: same as n_heads (plain multi-head attention)
    ffn_hidden: int | None = None  # None: derived by `default_ffn_hidden`
    max_seq_len: int = 1024
    rope_theta: float = 10000.0
    norm_eps: float = 1e-5
    qk_norm: bool = False  # per-head RMSNorm on q and k (Qwen3, OLMo 2)
    activation: str = "swiglu"  # 'swiglu' | 'relu2'
    tie_embeddings: bool = True
    attn_softcap: float | None = None  # Gemma 2: cap * tanh(score / cap) on attention logits
    final_softcap: float | None = None  # Gemma 2: the same on the output logits
    bitnet: bool = False  # BitNet b1.58 ternary linears inside the blocks
    dropout: float = 0.0
    init_std: float = 0.02

    def __post_init__(self) -> None:
        # Resolve derived defaults first so that to_dict() always writes concrete numbers.
        if self.n_kv_heads is None:
            object.__setattr__(self, "n_kv_heads", self.n_heads)
        if self.activation not in ACTIVATIONS:
            raise ConfigError(
                f"ModelConfig.activation={self.activation!r} is not supported; use one of "
                f"{', '.join(ACTIVATIONS)}"
            )
        if self.ffn_hidden is None:
            object.__setattr__(
                self, "ffn_hidden", default_ffn_hidden(self.d_model, self.activation)
            )
        self._validate()

    def _validate(self) -> None:
        for name in (
            "vocab_size",
            "d_model",
            "n_layers",
            "n_heads",
            "n_kv_heads",
            "ffn_hidden",
            "max_seq_len",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ConfigError(f"ModelConfig.{name} must be a positive integer, got {value!r}")
        for name in ("rope_theta", "norm_eps", "init_std"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
                raise ConfigError(f"ModelConfig.{name} must be a positive number, got {value!r}")
        for name in ("attn_softcap", "final_softcap"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int | float) or value <= 0):
                raise ConfigError(
                    f"ModelConfig.{name} must be a positive number or None (off), got {value!r}"
                )
        for name in ("qk_norm", "tie_embeddings", "bitnet"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"ModelConfig.{name} must be true or false")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"ModelConfig.dropout must be in [0, 1), got {self.dropout!r}")
        if self.d_model % self.n_heads:
            raise ConfigError(
                f"ModelConfig.d_model={self.d_model} is not divisible by n_heads={self.n_heads}; "
                "pick n_heads that divides d_model"
            )
        if self.n_heads % self.n_kv_heads:
            raise ConfigError(
                f"ModelConfig.n_heads={self.n_heads} is not a multiple of "
                f"n_kv_heads={self.n_kv_heads}; grouped-query attention needs whole groups"
            )
        if self.head_dim % 2:
            raise ConfigError(
                f"ModelConfig head_dim = d_model / n_heads = {self.head_dim} is odd; RoPE rotates "
                "pairs of channels, so choose d_model and n_heads with an even quotient"
            )

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    # ---- serialization ---------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (ints, floats, bools, strings, None) with derived fields resolved."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Inverse of `to_dict`; unknown keys are an error (a typo must not silently default)."""
        if not isinstance(data, dict):
            raise ConfigError(f"model config must be a JSON object, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(
                f"unknown model config key(s) {unknown}; valid keys are {sorted(known)}"
            )
        return cls(**data)

    def replace(self, **changes: Any) -> ModelConfig:
        """A copy with some fields changed (validated again)."""
        return self.from_dict({**self.to_dict(), **changes})

    # ---- sizes -----------------------------------------------------------------------------

    def num_params(self, exclude_embeddings: bool = False) -> int:
        """Parameter count computed from the shape alone (no allocation; matches `Decoder`).

        With tied embeddings the shared matrix counts once. `exclude_embeddings` drops the input
        embedding and, when untied, the output head too, which is how seed models that use a
        different vocabulary are compared.
        """
        d, hd = self.d_model, self.head_dim
        attn = d * hd * (2 * self.n_heads + 2 * self.n_kv_heads)  # q, o + k, v
        if self.qk_norm:
            attn += 2 * hd
        n_ffn_mats = 3 if self.activation == "swiglu" else 2
        ffn = n_ffn_mats * d * self.ffn_hidden
        sub_norms = (self.n_heads * hd + self.ffn_hidden) if self.bitnet else 0  # BitNet SubLN
        per_layer = attn + ffn + 2 * d + sub_norms
        body = self.n_layers * per_layer + d  # + final norm
        if exclude_embeddings:
            return body
        embeddings = self.vocab_size * d * (1 if self.tie_embeddings else 2)
        return body + embeddings
