"""Autoregressive decoding with a KV cache: batched, left-padded, streamed token by token.

A batch of prompts of different lengths is left-padded; padded positions are masked out as keys
and RoPE positions count real tokens only, so every row decodes exactly as it would alone.
The prompt is prefilled in one multi-token call (correct causal mask, see attention.py), then
each step feeds one token per row.

Sampling order per step: repetition penalty (CTRL, Keskar et al. 2019: positive logits of seen
tokens divided by the penalty, negative ones multiplied) -> temperature (0 = greedy) -> top-k ->
top-p (nucleus, Holtzman et al. 2020) -> multinomial draw.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch

from smelt.errors import InputError
from smelt.model.decoder import Decoder


def check_settings(
    temperature: float,
    top_k: int | None,
    top_p: float | None,
    repetition_penalty: float,
    max_new_tokens: int,
) -> None:
    """InputError for a sampling setting out of range (shared with the serving engine)."""
    if temperature < 0:
        raise InputError(f"temperature must be >= 0 (0 = greedy), got {temperature}")
    if top_k is not None and top_k <= 0:
        raise InputError(f"top_k must be a positive integer or None, got {top_k}")
    if top_p is not None and not 0.0 < top_p <= 1.0:
        raise InputError(f"top_p must be in (0, 1] or None, got {top_p}")
    if repetition_penalty <= 0:
        raise InputError(f"repetition_penalty must be > 0 (1.0 = off), got {repetition_penalty}")
    if max_new_tokens < 0:
        raise InputError(f"max_new_tokens must be >= 0, got {max_new_tokens}")


def sample_next(
    logits: torch.Tensor,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    repetition_penalty: float = 1.0,
    seen: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Pick one token per row from float logits (B, V); `seen` (B, V) bool marks tokens that
    the repetition penalty applies to. Returns (B,) int64."""
    logits = logits.float()
    if repetition_penalty != 1.0 and seen is not None:
        penalized = torch.where(
            logits > 0, logits / repetition_penalty, logits * repetition_penalty
        )
        logits = torch.where(seen, penalized, logits)
    if temperature == 0:
        return logits.argmax(dim=-1)
    logits = logits / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = logits.sort(dim=-1, descending=True)  # (B, V)
        probs = sorted_logits.softmax(dim=-1)
        # drop a token once the mass before it already reaches top_p (the first always stays)
        drop = probs.cumsum(dim=-1) - probs >= top_p
        sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)
    probs = logits.softmax(dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(1)


@torch.no_grad()
def generate_stream(
    model: Decoder,
    prompts: Sequence[Sequence[int]],
    *,
    max_new_tokens: int = 64,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    repetition_penalty: float = 1.0,
    stop_token_ids: Sequence[int] = (),
    generator: torch.Generator | None = None,
) -> Iterator[list[int | None]]:
    """Yield, per decoding step, one new token id per prompt (None once that row has stopped).

    A row stops after emitting a token in `stop_token_ids`; the stop token itself is not
    yielded. The model runs in eval mode for the duration and is restored afterwards.
    """
    check_settings(temperature, top_k, top_p, repetition_penalty, max_new_tokens)
    rows = [list(map(int, p)) for p in prompts]
    if not rows or any(len(r) == 0 for r in rows):
        raise InputError("generate needs at least one prompt and every prompt needs a token")
    cfg = model.config
    if any(t < 0 or t >= cfg.vocab_size for r in rows for t in r):
        raise InputError(f"prompt token ids must be in [0, {cfg.vocab_size})")
    if max_new_tokens == 0:
        return
    device = model.embed.weight.device
    batch, prompt_len = len(rows), max(len(r) for r in rows)
    total = prompt_len + max_new_tokens
    if total > cfg.max_seq_len:
        raise InputError(
            f"prompt ({prompt_len} tokens) + max_new_tokens ({max_new_tokens}) exceeds the "
            f"model's max_seq_len={cfg.max_seq_len}; shorten the prompt or generate fewer tokens"
        )

    idx = torch.zeros(batch, prompt_len, dtype=torch.long, device=device)  # left-padded
    key_valid = torch.zeros(batch, prompt_len, dtype=torch.bool, device=device)
    seen = torch.zeros(batch, cfg.vocab_size, dtype=torch.bool, device=device)
    for b, row in enumerate(rows):
        tokens = torch.tensor(row, dtype=torch.long, device=device)
        idx[b, prompt_len - len(row) :] = tokens
        key_valid[b, prompt_len - len(row) :] = True
        seen[b, tokens] = True
    padded = not bool(key_valid.all())
    stop = torch.tensor(sorted(set(stop_token_ids)), dtype=torch.long, device=device)
    finished = torch.zeros(batch, dtype=torch.bool, device=device)

    was_training = model.training
    model.eval()
    try:
        cache = model.new_cache(batch, total)
        logits = model.logits(
            idx, cache=cache, key_valid=key_valid if padded else None, last_only=True
        )[:, -1]  # (B, V)
        for step in range(max_new_tokens):
            token = sample_next(
                logits,
                temperature=temperature,
                top_k=top_k,
                top_p=top_p,
                repetition_penalty=repetition_penalty,
                seen=seen,
                generator=generator,
            )  # (B,)
            finished |= torch.isin(token, stop)
            out = token.tolist()
            yield [None if done else t for t, done in zip(out, finished.tolist(), strict=True)]
            if bool(finished.all()) or step == max_new_tokens - 1:
                return
            seen[torch.arange(batch, device=device), token] = True
            if padded:
                key_valid = torch.cat([key_valid, key_valid.new_ones(batch, 1)], dim=1)
            logits = model.logits(
                token[:, None], cache=cache, key_valid=key_valid if padded else None, last_only=True
            )[:, -1]
    finally:
        model.train(was_training)


def generate(model: Decoder, prompts: Sequence[Sequence[int]], **settings) -> list[list[int]]:
    """New token ids per prompt (stop tokens excluded); settings as in `generate_stream`."""
    completions: list[list[int]] = [[] for _ in prompts]
    for step in generate_stream(model, prompts, **settings):
        for row, token in enumerate(step):
            if token is not None:
                completions[row].append(token)
    return completions


def stream(model: Decoder, prompt: Sequence[int], **settings) -> Iterator[int]:
    """Single-prompt streaming for CLIs: yields token ids until a stop token or the limit."""
    for step in generate_stream(model, [prompt], **settings):
        if step[0] is None:
            return
        yield step[0]
