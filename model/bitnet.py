"""BitNet b1.58 linear layer (Ma et al. 2024, "The Era of 1-bit LLMs"; Microsoft 2025, b1.58 2B4T).

Weights are quantized to {-1, 0, +1} times one per-tensor scale (absmean); activations to 8-bit
integers with a per-token absmax scale. Training keeps full-precision latent weights and passes
gradients through both rounding steps unchanged (straight-through estimator), which is the
recipe of the paper's training tips. The input normalization that the paper puts inside
BitLinear is provided by the block's pre-norms plus the SubLN norms in attention/FFN.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from smelt.model.config import ModelConfig


def quantize_weight_ternary(weight: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """absmean: W_q = clamp(round(W / mean|W|), -1, 1) * mean|W| (returned de-quantized)."""
    scale = weight.abs().mean().clamp(min=eps)
    return (weight / scale).round().clamp(-1, 1) * scale


def quantize_activation_int8(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """absmax per token: x_q = clamp(round(x * 127 / max|x|), -128, 127) (returned de-quantized)."""
    scale = 127.0 / x.abs().amax(dim=-1, keepdim=True).clamp(min=eps)
    return (x * scale).round().clamp(-128, 127) / scale


class BitLinear(nn.Linear):
    """Drop-in `nn.Linear` (no bias) whose forward sees ternary weights and int8 activations."""

    def __init__(self, in_features: int, out_features: int, bias: bool = False) -> None:
        super().__init__(in_features, out_features, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight
        # STE: value of the quantized tensor, gradient of the identity.
        w_q = w + (quantize_weight_ternary(w) - w).detach()
        x_q = x + (quantize_activation_int8(x) - x).detach()
        return F.linear(x_q, w_q, self.bias)


def make_linear(cfg: ModelConfig, in_features: int, out_features: int) -> nn.Linear:
    """Linear layers inside the blocks: BitLinear when the config asks for BitNet."""
    if cfg.bitnet:
        return BitLinear(in_features, out_features)
    return nn.Linear(in_features, out_features, bias=False)
