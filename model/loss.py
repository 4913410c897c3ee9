"""Chunked (fused linear) cross-entropy: the LM-head projection and the loss in one pass.

Plain `F.cross_entropy(h @ W.T, y)` holds the (tokens x vocab) logits, their float32 copy, the
log-softmax and its gradient: at 8K tokens and a 32K vocabulary that is 1 GiB per copy. Here the
tokens are split into chunks; for each chunk the logits are formed, reduced to the loss and, when
gradients are needed, immediately turned into their gradient (softmax - onehot) and multiplied
back into d(hidden) and d(W). Only one chunk of logits exists at a time and nothing is
recomputed in backward (the idea of Liger-Kernel's FusedLinearCrossEntropy, Hsu et al. 2024).
Reductions are done in float32 whatever the compute dtype.

Optional per-token weights turn the mean into a weighted mean, sum(w * ce) / sum(w) over the
counted tokens: fine-tuning uses them to make the end-of-turn token count more (the stop token
is one token per answer, and a model that never learns it never stops).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from smelt.errors import ConfigError

IGNORE_INDEX = -100


def default_chunk_tokens(vocab_size: int) -> int:
    """Tokens per chunk so that one float32 chunk of logits is about 64 MiB (2**24 values): at
    most two such buffers (logits, log-probabilities) are alive at once, and a chunk of 512+
    tokens still keeps the GEMMs large enough to run at full speed on a GPU."""
    return max(256, (1 << 24) // vocab_size)


def _chunk_loss_and_grad(
    hidden: torch.Tensor,  # (c, d)
    weight: torch.Tensor,  # (V, d)
    targets: torch.Tensor,  # (c,)
    softcap: float | None,
    ignore_index: int,
    want_grad: bool,
    weights: torch.Tensor | None = None,  # (c,)
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """Summed (weighted) loss of one chunk, d(ce)/d(logits) per row in the compute dtype (or
    None), and each token's weight (0 for ignored tokens). Rows are *not* scaled or zeroed in
    the gradient (a full pass over (c, V)); the caller scales the (c, d)-sized operands by the
    weights instead, which is cheaper."""
    logits = (hidden @ weight.t()).float()  # (c, V)
    if softcap is not None:
        capped = logits.div_(softcap).tanh_()  # (c, V), kept for the tanh derivative
        logits = capped * softcap
    valid = targets != ignore_index  # (c,)
    scale = valid.float() if weights is None else weights.float() * valid  # (c,)
    safe_targets = targets.masked_fill(~valid, 0)
    logprobs = torch.log_softmax(logits, dim=-1)  # (c, V), one fused pass
    del logits
    loss_sum = -(logprobs.gather(1, safe_targets[:, None]).squeeze(1) * scale).sum()
    if not want_grad:
        return loss_sum, None, scale
    grad = logprobs.exp_()  # softmax, in place: (c, V)
    grad.scatter_add_(1, safe_targets[:, None], -valid[:, None].to(grad.dtype))  # - onehot
    if softcap is not None:
        grad.mul_(capped.square_().neg_().add_(1.0))  # d(cap * tanh(z / cap)) / dz
    return loss_sum, grad.to(hidden.dtype), scale


class _ChunkedLinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, weight, targets, chunk, softcap, ignore_index, mean, weights):  # type: ignore[override]
        need_h, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        grad_hidden = torch.empty_like(hidden) if need_h else None  # (N, d)
        grad_weight = torch.zeros_like(weight, dtype=torch.float32) if need_w else None  # (V, d)
        total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        counted = torch.zeros((), dtype=torch.float32, device=hidden.device)
        for start in range(0, hidden.shape[0], chunk):
            h = hidden[start : start + chunk]
            loss_sum, grad, scale = _chunk_loss_and_grad(
                h,
                weight,
                targets[start : start + chunk],
                softcap,
                ignore_index,
                want_grad=need_h or need_w,
                weights=None if weights is None else weights[start : start + chunk],
            )
            total += loss_sum
            counted += scale.sum()
            keep = scale[:, None].to(h.dtype)  # (c, 1): ignored tokens get no gradient
            if grad_hidden is not None:
                out = grad_hidden[start : start + chunk]
                torch.matmul(grad, weight, out=out)  # (c, d)
                out.mul_(keep)
            if grad_weight is not None and grad.dtype == torch.float32:
                grad_weight.addmm_(grad.t(), h * keep)  # (V, d); float32 accumulator
            elif grad_weight is not None:  # bf16/fp16 compute: matmul in that dtype, sum in fp32
                grad_weight.add_(grad.t() @ (h * keep))
        count = _denominator(counted) if mean else None
        if mean:
            total = total / count
        ctx.save_for_backward(grad_hidden, grad_weight, count)
        ctx.weight_dtype = weight.dtype
        return total

    @staticmethod
    def backward(ctx, grad_output):  # type: ignore[override]
        grad_hidden, grad_weight, count = ctx.saved_tensors
        scale = grad_output / count if count is not None else grad_output
        d_hidden = grad_hidden * scale.to(grad_hidden.dtype) if grad_hidden is not None else None
        d_weight = (grad_weight * scale).to(ctx.weight_dtype) if grad_weight is not None else None
        return d_hidden, d_weight, None, None, None, None, None, None


def _denominator(counted: torch.Tensor) -> torch.Tensor:
    """What a mean divides by: the counted weight, or 1 when nothing counts (loss 0, not NaN)."""
    return torch.where(counted > 0, counted, torch.ones_like(counted))


def chunked_cross_entropy(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    *,
    softcap: float | None = None,
    ignore_index: int = IGNORE_INDEX,
    reduction: str = "mean",
    chunk_tokens: int | None = None,
    weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Cross-entropy of `softcap(hidden @ weight.T)` against `targets` without full logits.

    hidden: (N, d) final hidden states; weight: (V, d) output embedding; targets: (N,) int64,
    `ignore_index` where no loss is wanted. reduction 'mean' averages over the counted tokens
    (0.0 when none are counted, where F.cross_entropy would give NaN) or 'sum'. weights: (N,)
    optional per-token weights (no gradient): the sum becomes sum(w * ce) and the mean
    sum(w * ce) / sum(w), both over the counted tokens.
    Under autocast the matmuls run in the autocast dtype, reductions stay in float32.
    """
    if reduction not in ("mean", "sum"):
        raise ConfigError(f"loss reduction must be 'mean' or 'sum', got {reduction!r}")
    hidden, targets = hidden.reshape(-1, hidden.shape[-1]), targets.reshape(-1)
    if weights is not None:
        weights = weights.reshape(-1).detach()
        if weights.shape != targets.shape:
            raise ConfigError(f"{weights.shape[0]} loss weights for {targets.shape[0]} targets")
    if hidden.shape[0] != targets.shape[0]:
        raise ConfigError(
            f"{hidden.shape[0]} hidden states but {targets.shape[0]} targets; pass one target "
            "per position (shifted by one, -100 where there is none)"
        )
    chunk = chunk_tokens or default_chunk_tokens(weight.shape[0])
    device_type = hidden.device.type
    if torch.is_autocast_enabled(device_type):
        dtype = torch.get_autocast_dtype(device_type)
        hidden, weight = hidden.to(dtype), weight.to(dtype)
    with torch.autocast(device_type, enabled=False):
        if torch.is_grad_enabled() and (hidden.requires_grad or weight.requires_grad):
            return _ChunkedLinearCrossEntropy.apply(
                hidden, weight, targets, chunk, softcap, ignore_index, reduction == "mean", weights
            )
        total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        counted = torch.zeros((), dtype=torch.float32, device=hidden.device)
        for start in range(0, hidden.shape[0], chunk):
            loss_sum, _, scale = _chunk_loss_and_grad(
                hidden[start : start + chunk],
                weight,
                targets[start : start + chunk],
                softcap,
                ignore_index,
                want_grad=False,
                weights=None if weights is None else weights[start : start + chunk],
            )
            total += loss_sum
            counted += scale.sum()
        if reduction == "mean":
            total = total / _denominator(counted)
        return total


def reference_cross_entropy(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    softcap: float | None = None,
    ignore_index: int = IGNORE_INDEX,
    weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """The plain, full-logits computation that `chunked_cross_entropy` must equal (tests, bench)."""
    logits = F.linear(hidden, weight).float()
    if softcap is not None:
        logits = softcap * torch.tanh(logits / softcap)
    logits, targets = logits.reshape(-1, logits.shape[-1]), targets.reshape(-1)
    if weights is None:
        return F.cross_entropy(logits, targets, ignore_index=ignore_index)
    per_token = F.cross_entropy(logits, targets, ignore_index=ignore_index, reduction="none")
    scale = weights.reshape(-1).float() * (targets != ignore_index)
    return (per_token * scale).sum() / scale.sum()
