"""Rotary position embeddings (Su et al. 2021) in the "rotate half" layout.

Channel i is paired with channel i + head_dim/2 (not with its neighbour 2i+1), exactly as in
Hugging Face Llama/Qwen3, so q/k projection weights export without any permutation.
cos/sin are precomputed once for `max_seq_len` positions; callers pass absolute positions, which
is how the KV cache continues a sequence (offset) and how left-padded rows start at 0.
"""

from __future__ import annotations

import torch
from torch import nn

from smelt.errors import InputError


class Rotary(nn.Module):
    """Holds the cos/sin tables; `forward(positions)` returns the rows for those positions."""

    def __init__(self, head_dim: int, max_seq_len: int, theta: float = 10000.0) -> None:
        super().__init__()
        self.head_dim = head_dim
        self.max_seq_len = max_seq_len
        self.theta = theta
        # Non-persistent: derived from the config, never stored in checkpoints.
        self.register_buffer("cos", torch.empty(max_seq_len, head_dim), persistent=False)
        self.register_buffer("sin", torch.empty(max_seq_len, head_dim), persistent=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """(Re)compute the tables, e.g. after building on the meta device and `to_empty`."""
        device = self.cos.device
        if device.type == "meta":
            return
        inv_freq = 1.0 / (
            self.theta ** (torch.arange(0, self.head_dim, 2, device=device).float() / self.head_dim)
        )  # (hd/2,)
        t = torch.arange(self.max_seq_len, device=device).float()
        freqs = torch.outer(t, inv_freq)  # (S, hd/2)
        emb = torch.cat((freqs, freqs), dim=-1)  # (S, hd)
        self.cos.copy_(emb.cos())
        self.sin.copy_(emb.sin())

    def forward(
        self, start: int, length: int, positions: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """cos, sin for positions start..start+length-1 (shared by the batch), or for explicit
        per-row `positions` (B, T); shaped to broadcast against (B, T, n_heads, head_dim).
        Checked with Python ints only, so the training path never syncs with the device."""
        if start + length > self.max_seq_len:
            raise InputError(
                f"sequence reaches position {start + length - 1} but the model's max_seq_len is "
                f"{self.max_seq_len}; shorten the input or build the model with a larger max_seq_len"
            )
        if positions is None:
            cos, sin = self.cos[start : start + length], self.sin[start : start + length]
        else:
            cos, sin = self.cos[positions], self.sin[positions]  # (B, T, hd)
        return cos.unsqueeze(-2), sin.unsqueeze(-2)  # (..., T, 1, hd)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x: (B, T, h, hd); cos/sin: (T, 1, hd) or (B, T, 1, hd). Math in x's dtype, like HF."""
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    return x * cos + rotate_half(x) * sin
