"""One pre-norm transformer block: x + attn(norm(x)), then x + ffn(norm(x))."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from smelt.model.attention import Attention, AttentionMask, KVCache
from smelt.model.config import ModelConfig
from smelt.model.feedforward import FeedForward
from smelt.model.norm import RMSNorm


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig, layer_idx: int) -> None:
        super().__init__()
        self.attn_norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.attn = Attention(cfg, layer_idx)
        self.ffn_norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.ffn = FeedForward(cfg)
        self.dropout = cfg.dropout

    def forward(
        self,
        x: torch.Tensor,  # (B, T, d)
        rope: tuple[torch.Tensor, torch.Tensor],
        mask: AttentionMask,
        cache: KVCache | None = None,
    ) -> torch.Tensor:
        h = self.attn(self.attn_norm(x), rope, mask, cache)
        if self.dropout:
            h = F.dropout(h, self.dropout, self.training)
        x = x + h
        h = self.ffn(self.ffn_norm(x))
        if self.dropout:
            h = F.dropout(h, self.dropout, self.training)
        return x + h  # (B, T, d)
