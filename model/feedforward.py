"""Position-wise feed-forward networks.

SwiGLU (Shazeer 2020; LLaMA): down(silu(gate(x)) * up(x)), three matrices.
ReLU^2 (So et al. 2021, Primer; BitNet b1.58 2B4T): down(relu(up(x))^2), two matrices.
Names gate_proj/up_proj/down_proj match Hugging Face so the export is a key rename.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from smelt.model.bitnet import make_linear
from smelt.model.config import ModelConfig
from smelt.model.norm import RMSNorm


class FeedForward(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.gated = cfg.activation == "swiglu"
        if self.gated:
            self.gate_proj = make_linear(cfg, cfg.d_model, cfg.ffn_hidden)
        self.up_proj = make_linear(cfg, cfg.d_model, cfg.ffn_hidden)
        self.down_proj = make_linear(cfg, cfg.ffn_hidden, cfg.d_model)
        # BitNet b1.58 2B4T's SubLN: re-normalize before the quantized down projection.
        self.sub_norm = RMSNorm(cfg.ffn_hidden, cfg.norm_eps) if cfg.bitnet else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, d) -> (B, T, d)
        if self.gated:
            h = F.silu(self.gate_proj(x)) * self.up_proj(x)  # (B, T, ffn)
        else:
            h = F.relu(self.up_proj(x)).square()  # (B, T, ffn)
        if self.sub_norm is not None:
            h = self.sub_norm(h)
        return self.down_proj(h)
