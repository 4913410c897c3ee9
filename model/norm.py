"""RMSNorm (Zhang & Sennrich 2019): scale by the root mean square, no mean subtraction, no bias.

When input and weight share a dtype, `F.rms_norm` (a fused ATen op since torch 2.4) computes the
same float32 math in fewer passes; otherwise (bf16 activations, fp32 weight) the math follows
Hugging Face Llama/Qwen3 exactly: normalize in float32, cast back, then multiply by the weight.
Both agree with transformers' logits to float32 rounding (tests/model/test_model_export.py).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == self.weight.dtype:
            return F.rms_norm(x, (x.shape[-1],), self.weight, self.eps)
        dtype = x.dtype
        x32 = x.float()
        x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x32.to(dtype)

    def reset_parameters(self) -> None:
        nn.init.ones_(self.weight)
