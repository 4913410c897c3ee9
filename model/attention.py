"""Grouped-query causal self-attention with RoPE, optional QK-norm, soft-capping and a KV cache.

Which kernel runs is decided by the mask the decoder builds once per forward (`AttentionMask`):

- plain causal training/eval: SDPA with `is_causal=True` (flash/memory-efficient kernels);
- explicit boolean mask (document masking on CPU, cached prefill, left padding): SDPA `attn_mask`;
- FlexAttention block mask (document masking on CUDA, and soft-capping on CUDA via `score_mod`);
- soft-capping anywhere else: an explicit-score path (scores are materialized, so cap*tanh(s/cap)
  can be applied), used alike by training, eval and generation so the math never differs.

A cached prefill of several tokens is the subtle case: query i (absolute position L+i after L
cached tokens) may see keys 0..L+i. SDPA's `is_causal` aligns the mask to the top-left corner
when query and key lengths differ, which is wrong here, so cached calls always get an explicit mask.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from smelt.errors import InputError
from smelt.model.bitnet import make_linear
from smelt.model.config import ModelConfig
from smelt.model.norm import RMSNorm
from smelt.model.rope import apply_rotary

try:  # FlexAttention: torch >= 2.5
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention

    FLEX_AVAILABLE = True
except ImportError:  # pragma: no cover - older torch
    create_block_mask = flex_attention = None  # type: ignore[assignment]
    FLEX_AVAILABLE = False

_compiled_flex: Any = None


def _flex(*args: Any, **kwargs: Any) -> torch.Tensor:
    """FlexAttention, compiled once on CUDA (uncompiled it falls back to materialized scores)."""
    global _compiled_flex
    if args[0].device.type != "cuda" or torch.compiler.is_compiling():  # already inside a graph
        return flex_attention(*args, **kwargs)
    if _compiled_flex is None:
        _compiled_flex = torch.compile(flex_attention, dynamic=False)
    return _compiled_flex(*args, **kwargs)


@torch.compiler.disable
def _block_mask(mask_mod: Any, batch: int | None, length: int, device: Any) -> Any:
    """FlexAttention BlockMask, built eagerly (a graph break under torch.compile, once per step)."""
    return create_block_mask(mask_mod, batch, None, length, length, device=device)


@dataclass
class AttentionMask:
    """How queries may see keys; built once per forward and shared by every layer.

    causal: keys and queries are aligned and a query sees keys up to itself (SDPA is_causal).
    dense: bool (B or 1, 1, Tq, Sk), True where attending is allowed; overrides `causal`.
    block: a FlexAttention BlockMask; overrides both.
    """

    causal: bool = True
    dense: torch.Tensor | None = None
    block: Any = None


def build_mask(
    *,
    q_len: int,
    cache_len: int = 0,
    doc_ids: torch.Tensor | None = None,
    key_valid: torch.Tensor | None = None,
    use_flex: bool = False,
    device: torch.device | None = None,
) -> AttentionMask:
    """Mask for `q_len` new queries after `cache_len` cached keys.

    doc_ids: (B, T) document index per token; a query sees only earlier keys of its document.
    key_valid: (B, cache_len + q_len) False at left-padding; padded keys are never attended.
    """
    if doc_ids is not None:
        if use_flex:

            def doc_causal(b: Any, h: Any, q_idx: Any, kv_idx: Any) -> Any:
                return (q_idx >= kv_idx) & (doc_ids[b, q_idx] == doc_ids[b, kv_idx])

            batch = doc_ids.shape[0]
            return AttentionMask(block=_block_mask(doc_causal, batch, q_len, doc_ids.device))
        same_doc = doc_ids[:, :, None] == doc_ids[:, None, :]  # (B, T, T)
        causal = torch.ones(q_len, q_len, dtype=torch.bool, device=doc_ids.device).tril()
        return AttentionMask(dense=(same_doc & causal)[:, None])  # (B, 1, T, T)
    if key_valid is None and cache_len == 0:
        if use_flex:  # only requested for soft-capping on CUDA

            def causal_mod(b: Any, h: Any, q_idx: Any, kv_idx: Any) -> Any:
                return q_idx >= kv_idx

            return AttentionMask(block=_block_mask(causal_mod, None, q_len, device))
        return AttentionMask(causal=True)
    if key_valid is None and q_len == 1:
        return AttentionMask(causal=False)  # one new token sees the whole cache
    k_len = cache_len + q_len
    device = key_valid.device if key_valid is not None else device
    q_pos = torch.arange(cache_len, k_len, device=device)[:, None]  # (Tq, 1) absolute
    k_pos = torch.arange(k_len, device=device)[None, :]  # (1, Sk)
    allowed = k_pos <= q_pos  # (Tq, Sk)
    if key_valid is None:
        return AttentionMask(dense=allowed[None, None])  # (1, 1, Tq, Sk)
    # A padded query's row would be empty (NaN softmax): let it see itself; nobody reads it.
    allowed = (allowed[None] & key_valid[:, None, :]) | (k_pos == q_pos)[None]  # (B, Tq, Sk)
    return AttentionMask(dense=allowed[:, None])


class KVCache:
    """Preallocated keys/values of every layer, (B, n_kv, max_len, hd) each, after RoPE.

    Layers write at `length`; the decoder calls `advance(T)` once all layers have seen the step.
    """

    def __init__(
        self,
        cfg: ModelConfig,
        batch: int,
        max_len: int,
        *,
        device: torch.device | str,
        dtype: torch.dtype,
    ) -> None:
        shape = (batch, cfg.n_kv_heads, max_len, cfg.head_dim)
        self.k = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(cfg.n_layers)]
        self.v = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(cfg.n_layers)]
        self.max_len = max_len
        self.length = 0

    def update(
        self, layer: int, k: torch.Tensor, v: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Store k, v (B, n_kv, T, hd) and return all keys/values so far (B, n_kv, L+T, hd)."""
        end = self.length + k.shape[2]
        if end > self.max_len:
            raise InputError(f"KV cache holds {self.max_len} positions; {end} requested")
        self.k[layer][:, :, self.length : end] = k
        self.v[layer][:, :, self.length : end] = v
        return self.k[layer][:, :, :end], self.v[layer][:, :, :end]

    def advance(self, n: int) -> None:
        self.length += n


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig, layer_idx: int) -> None:
        super().__init__()
        self.layer_idx = layer_idx
        self.n_heads, self.n_kv_heads, self.head_dim = cfg.n_heads, cfg.n_kv_heads, cfg.head_dim
        self.softcap = cfg.attn_softcap
        self.dropout = cfg.dropout
        self.q_proj = make_linear(cfg, cfg.d_model, cfg.n_heads * cfg.head_dim)
        self.k_proj = make_linear(cfg, cfg.d_model, cfg.n_kv_heads * cfg.head_dim)
        self.v_proj = make_linear(cfg, cfg.d_model, cfg.n_kv_heads * cfg.head_dim)
        self.o_proj = make_linear(cfg, cfg.n_heads * cfg.head_dim, cfg.d_model)
        self.q_norm = RMSNorm(cfg.head_dim, cfg.norm_eps) if cfg.qk_norm else None
        self.k_norm = RMSNorm(cfg.head_dim, cfg.norm_eps) if cfg.qk_norm else None
        # BitNet b1.58 2B4T's SubLN before the quantized output projection.
        self.sub_norm = RMSNorm(cfg.n_heads * cfg.head_dim, cfg.norm_eps) if cfg.bitnet else None

    def forward(
        self,
        x: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor],
        mask: AttentionMask,
        cache: KVCache | None = None,
    ) -> torch.Tensor:
        B, T, _ = x.shape
        q = self.q_proj(x).view(B, T, self.n_heads, self.head_dim)  # (B, T, nh, hd)
        k = self.k_proj(x).view(B, T, self.n_kv_heads, self.head_dim)  # (B, T, nkv, hd)
        v = self.v_proj(x).view(B, T, self.n_kv_heads, self.head_dim)  # (B, T, nkv, hd)
        if self.q_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        cos, sin = rope
        q = apply_rotary(q, cos, sin).transpose(1, 2)  # (B, nh, T, hd)
        k = apply_rotary(k, cos, sin).transpose(1, 2)  # (B, nkv, T, hd)
        v = v.transpose(1, 2)  # (B, nkv, T, hd)
        if cache is not None:
            k, v = cache.update(self.layer_idx, k, v)  # (B, nkv, L+T, hd)
        y = self._attend(q, k, v, mask)  # (B, nh, T, hd)
        y = y.transpose(1, 2).reshape(B, T, self.n_heads * self.head_dim)
        if self.sub_norm is not None:
            y = self.sub_norm(y)
        return self.o_proj(y)  # (B, T, d)

    def _attend(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: AttentionMask
    ) -> torch.Tensor:
        dropout_p = self.dropout if self.training else 0.0
        gqa = self.n_kv_heads != self.n_heads
        if mask.block is not None:  # FlexAttention has no dropout: attention dropout is skipped
            score_mod = None
            if self.softcap is not None:
                cap = self.softcap

                def score_mod(score: Any, b: Any, h: Any, q_idx: Any, kv_idx: Any) -> Any:
                    return cap * torch.tanh(score / cap)

            return _flex(q, k, v, score_mod=score_mod, block_mask=mask.block, enable_gqa=gqa)
        if self.softcap is not None:
            return self._attend_explicit(q, k, v, mask, dropout_p)
        if mask.dense is not None:
            return F.scaled_dot_product_attention(
                q, k, v, attn_mask=mask.dense, dropout_p=dropout_p, enable_gqa=gqa
            )
        return F.scaled_dot_product_attention(
            q, k, v, is_causal=mask.causal, dropout_p=dropout_p, enable_gqa=gqa
        )

    def _attend_explicit(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        mask: AttentionMask,
        dropout_p: float,
    ) -> torch.Tensor:
        """Materialized scores, for soft-capping: O(T^2) memory per head, like Gemma 2 eager."""
        rep = self.n_heads // self.n_kv_heads
        if rep > 1:  # kv head j serves query heads j*rep .. j*rep+rep-1 (as HF repeat_kv)
            k = k.repeat_interleave(rep, dim=1)  # (B, nh, Sk, hd)
            v = v.repeat_interleave(rep, dim=1)
        scores = (q @ k.transpose(-2, -1)) * self.head_dim**-0.5  # (B, nh, Tq, Sk)
        scores = self.softcap * torch.tanh(scores / self.softcap)
        allowed = mask.dense
        if allowed is None and mask.causal:
            t_q, t_k = scores.shape[-2:]
            allowed = torch.ones(t_q, t_k, dtype=torch.bool, device=q.device).tril()
        if allowed is not None:
            scores = scores.masked_fill(~allowed, float("-inf"))
        probs = torch.softmax(scores.float(), dim=-1).to(q.dtype)
        probs = F.dropout(probs, p=dropout_p, training=dropout_p > 0)
        return probs @ v  # (B, nh, Tq, hd)
