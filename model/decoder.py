"""`Decoder`: the language model. Embedding -> n_layers pre-norm blocks -> RMSNorm -> tied head.

Two entry points, for two memory profiles:

- `forward(idx, targets)` (training, eval loss) never forms the (B, T, vocab) logits: the final
  hidden states go straight into the chunked cross-entropy (loss.py).
- `logits(idx, ...)` (generation, scoring) returns float32 logits, optionally only for the last
  position, and drives the KV cache.

Both apply the optional final soft-cap the same way, so the loss always scores the logits that
generation samples from.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from smelt.errors import InputError
from smelt.model.attention import FLEX_AVAILABLE, KVCache, build_mask
from smelt.model.block import Block
from smelt.model.config import ModelConfig
from smelt.model.loss import IGNORE_INDEX, chunked_cross_entropy
from smelt.model.norm import RMSNorm
from smelt.model.rope import Rotary


class ModelOutput(NamedTuple):
    """`logits` (B, T, V) float32 when no targets were given, else `loss` (a scalar)."""

    logits: torch.Tensor | None
    loss: torch.Tensor | None


class Decoder(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.d_model)
        self.layers = nn.ModuleList(Block(config, i) for i in range(config.n_layers))
        self.norm = RMSNorm(config.d_model, config.norm_eps)
        self.lm_head = (
            None
            if config.tie_embeddings
            else nn.Linear(config.d_model, config.vocab_size, bias=False)
        )
        self.rotary = Rotary(config.head_dim, config.max_seq_len, config.rope_theta)
        self.activation_checkpointing = False
        # 'auto': FlexAttention for document masks / soft-capping on CUDA, SDPA otherwise;
        # 'sdpa' or 'flex' force one (tests use 'flex' to check it on CPU).
        self.attention_backend = "auto"
        self.init_weights()

    # ---- construction ----------------------------------------------------------------------

    def init_weights(self) -> None:
        """N(0, init_std) everywhere; residual output projections (o_proj, down_proj) scaled by
        1/sqrt(2 * n_layers) so the residual stream's variance does not grow with depth (GPT-2).
        Also recomputes RoPE tables, so a model built on the meta device can be materialized
        with `model.to_empty(device=...)` followed by `model.init_weights()`."""
        std = self.config.init_std
        out_std = std / math.sqrt(2 * self.config.n_layers)
        for name, module in self.named_modules():
            if isinstance(module, nn.Linear):
                is_residual_out = name.endswith(("o_proj", "down_proj"))
                nn.init.normal_(module.weight, 0.0, out_std if is_residual_out else std)
            elif isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, 0.0, std)
            elif isinstance(module, RMSNorm | Rotary):
                module.reset_parameters()

    def set_activation_checkpointing(self, enabled: bool) -> None:
        """Recompute each block in backward instead of storing its activations (training only)."""
        self.activation_checkpointing = enabled

    @property
    def output_weight(self) -> torch.Tensor:
        """(V, d) matrix of the output projection (the embedding when tied)."""
        return self.embed.weight if self.lm_head is None else self.lm_head.weight

    def new_cache(self, batch: int, max_len: int, dtype: torch.dtype | None = None) -> KVCache:
        """An empty KV cache for `batch` rows of up to `max_len` positions, in the dtype the
        keys will have (the autocast dtype when autocast is on)."""
        weight = self.embed.weight
        if dtype is None and torch.is_autocast_enabled(weight.device.type):
            dtype = torch.get_autocast_dtype(weight.device.type)
        return KVCache(
            self.config, batch, max_len, device=weight.device, dtype=dtype or weight.dtype
        )

    # ---- computation -----------------------------------------------------------------------

    def hidden_states(
        self,
        idx: torch.Tensor,
        *,
        doc_ids: torch.Tensor | None = None,
        cache: KVCache | None = None,
        key_valid: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Final normalized hidden states (B, T, d) of tokens `idx` (B, T).

        doc_ids (B, T): per-token document index for packed sequences (no cross-document
        attention). cache: continue after `cache.length` tokens and append these. key_valid
        (B, cache.length + T): False at left padding; positions then count valid tokens only.
        """
        B, T = idx.shape
        if doc_ids is not None and (cache is not None or key_valid is not None):
            raise InputError(
                "doc_ids mask packed training sequences; they cannot be combined with a KV cache "
                "or padding (generate one document per row instead)"
            )
        cache_len = cache.length if cache is not None else 0
        positions = None
        if key_valid is not None:
            positions = (key_valid.long().cumsum(-1) - 1).clamp(min=0)[:, -T:]  # (B, T)
        rope = self.rotary(cache_len, T, positions)
        mask = build_mask(
            q_len=T,
            cache_len=cache_len,
            doc_ids=doc_ids,
            key_valid=key_valid,
            use_flex=self._use_flex(idx, doc_ids, cache, key_valid),
            device=idx.device,
        )
        x = self.embed(idx)  # (B, T, d)
        if self.config.dropout:
            x = F.dropout(x, self.config.dropout, self.training)
        recompute = self.activation_checkpointing and self.training and torch.is_grad_enabled()
        for layer in self.layers:
            if recompute:
                x = checkpoint(layer, x, rope, mask, cache, use_reentrant=False)
            else:
                x = layer(x, rope, mask, cache)
        if cache is not None:
            cache.advance(T)
        return self.norm(x)  # (B, T, d)

    def forward(
        self,
        idx: torch.Tensor,
        targets: torch.Tensor | None = None,
        doc_ids: torch.Tensor | None = None,
        *,
        loss_reduction: str = "mean",
        loss_weights: torch.Tensor | None = None,
    ) -> ModelOutput:
        """idx (B, T) -> loss against `targets` (B, T) (-100 = ignored) without forming full
        logits, or, without targets, the logits (B, T, V) in float32.

        loss_weights (B, T): per-target weights (fine-tuning batches); the loss is then their
        weighted mean, and only the counted positions go through the output head: most of a
        chat batch is prompt, and the head is a large share of a small model's step."""
        h = self.hidden_states(idx, doc_ids=doc_ids)
        if targets is None:
            return ModelOutput(self._project(h), None)
        if loss_weights is not None and not torch.compiler.is_compiling():
            # data-dependent shapes: skipped under torch.compile, where all positions go through
            counted = (targets.reshape(-1) != IGNORE_INDEX).nonzero().squeeze(1)  # (n,)
            h = h.reshape(-1, h.shape[-1]).index_select(0, counted)  # (n, d)
            targets = targets.reshape(-1).index_select(0, counted)
            loss_weights = loss_weights.reshape(-1).index_select(0, counted)
        loss = chunked_cross_entropy(
            h,
            self.output_weight,
            targets,
            softcap=self.config.final_softcap,
            ignore_index=IGNORE_INDEX,
            reduction=loss_reduction,
            weights=loss_weights,
        )
        return ModelOutput(None, loss)

    def logits(
        self,
        idx: torch.Tensor,
        *,
        doc_ids: torch.Tensor | None = None,
        cache: KVCache | None = None,
        key_valid: torch.Tensor | None = None,
        last_only: bool = False,
    ) -> torch.Tensor:
        """float32 logits (B, T, V), or (B, 1, V) with `last_only` (generation)."""
        h = self.hidden_states(idx, doc_ids=doc_ids, cache=cache, key_valid=key_valid)
        if last_only:
            h = h[:, -1:]
        return self._project(h)

    def project(self, h: torch.Tensor) -> torch.Tensor:
        """float32 logits (..., V) of hidden states (..., d): scoring projects only the
        positions it reads, not every position of the batch."""
        return self._project(h)

    def _project(self, h: torch.Tensor) -> torch.Tensor:
        logits = F.linear(h, self.output_weight).float()  # (B, T, V)
        cap = self.config.final_softcap
        return cap * torch.tanh(logits / cap) if cap is not None else logits

    def _use_flex(
        self,
        idx: torch.Tensor,
        doc_ids: torch.Tensor | None,
        cache: KVCache | None,
        key_valid: torch.Tensor | None,
    ) -> bool:
        if self.attention_backend == "sdpa" or cache is not None or key_valid is not None:
            return False
        wanted = doc_ids is not None or self.config.attn_softcap is not None
        if self.attention_backend == "flex":
            return wanted and FLEX_AVAILABLE
        return wanted and FLEX_AVAILABLE and idx.device.type == "cuda"

    # ---- accounting ------------------------------------------------------------------------

    def num_params(self, exclude_embeddings: bool = False) -> int:
        """Parameters (a tied matrix counts once); see ModelConfig.num_params."""
        total = sum(p.numel() for p in self.parameters())
        if exclude_embeddings:
            total -= self.embed.weight.numel()
            if self.lm_head is not None:
                total -= self.lm_head.weight.numel()
        return total

    def estimate_flops_per_token(self, seq_len: int | None = None) -> float:
        """Training FLOPs per token (forward + backward) for MFU: 6 * N_matmul + 12 * L * H * hd * T
        (Kaplan et al. 2020; PaLM appendix B). N_matmul counts every weight a token is multiplied
        by (the output head, not the embedding lookup); the attention term counts the full T x T
        scores as the convention does, although causal kernels skip about half."""
        cfg = self.config
        seq_len = seq_len or cfg.max_seq_len
        n_matmul = self.num_params(exclude_embeddings=True) + cfg.vocab_size * cfg.d_model
        return 6.0 * n_matmul + 12.0 * cfg.n_layers * cfg.n_heads * cfg.head_dim * seq_len
