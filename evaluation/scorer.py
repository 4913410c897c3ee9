"""Log-likelihoods from a smelt `Decoder`, computed the way lm-evaluation-harness 0.4's `HFLM`
computes them for a causal model, so that the same items give the same scores.

Tokenization (`TemplateLM._encode_pair`, `HFLM.tok_encode`):
- trailing whitespace of a context moves to the front of its continuation;
- the context is encoded alone and context + continuation together; the continuation's tokens
  are the whole encoding minus as many leading tokens as the context alone has;
- an empty context becomes the prefix token (`<|endoftext|>`, which an export names
  `eos_token`; the harness takes BOS when a tokenizer has one, and smelt's has none).

Scoring (`HFLM._loglikelihood_tokens`): the model reads `(context + continuation)[-(L + 1):][:-1]`
with `L` its maximum length, and the log-softmax at the last `len(continuation)` positions
gives each continuation token's log-probability; their sum is the log-likelihood, and "greedy"
says whether every continuation token is the argmax. Texts are scored in the harness's rolling
windows (`get_rolling_token_windows` with `context_len=1`, made disjoint): each token is
predicted exactly once, each window sees up to `L` tokens.

What differs is only how fast: requests are sorted longest first and batched with right
padding (as the harness does), but only the positions that are scored go through the output
projection and the log-softmax (the harness projects every position of every row), in chunks
that bound memory, and on a GPU the decoder runs under bf16 autocast.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from smelt.errors import InputError
from smelt.evaluation.items import Request
from smelt.model.decoder import Decoder

TokenRequest = tuple[list[int], list[int]]  # (context ids, continuation ids)
Progress = Callable[[int], None]  # called with the number of requests just scored
PREFIX_TOKEN = "<|endoftext|>"
LOGIT_CHUNK_ELEMENTS = 1 << 24  # scored positions x vocabulary per log-softmax chunk (64 MiB)


@dataclass(frozen=True)
class Score:
    """One request's log-likelihood and whether greedy decoding reproduces its continuation."""

    loglikelihood: float
    greedy: bool


class Scorer:
    """Scores (context, continuation) requests and texts with one model and its tokenizer."""

    def __init__(
        self,
        model: Decoder,
        tokenizer: Any,
        *,
        batch_size: int = 32,
        max_length: int | None = None,
        autocast_dtype: torch.dtype | None = None,
    ) -> None:
        if batch_size <= 0:
            raise InputError(f"--batch-size must be a positive integer, got {batch_size}")
        limit = model.config.max_seq_len
        if max_length is not None and not 0 < max_length <= limit:
            raise InputError(
                f"--max-length {max_length} must be between 1 and the model's max_seq_len {limit}"
            )
        self.model, self.tokenizer = model, tokenizer
        self.batch_size = batch_size
        self.max_length = max_length or limit
        self.autocast_dtype = autocast_dtype
        self.prefix_token_id = tokenizer.token_to_id(PREFIX_TOKEN)
        if self.prefix_token_id is None:
            raise InputError(
                f"the checkpoint's tokenizer has no {PREFIX_TOKEN} token, which scoring puts "
                "before a text; use the tokenizer the run was trained with"
            )

    @property
    def device(self) -> torch.device:
        return self.model.embed.weight.device

    # ---- tokenization ----------------------------------------------------------------------

    def encode(self, texts: Sequence[str], add_special_tokens: bool = True) -> list[list[int]]:
        """Token ids of each text (`tokenizers` encodes a batch in parallel)."""
        if not texts:
            return []
        encodings = self.tokenizer.encode_batch(list(texts), add_special_tokens=add_special_tokens)
        return [e.ids for e in encodings]

    def encode_requests(self, requests: Sequence[Request]) -> list[TokenRequest]:
        """Token ids of each (context, continuation), split as the harness splits them."""
        pairs, empty = [], []
        for i, (context, continuation) in enumerate(requests):
            if context == "":
                empty.append(i)
                pairs.append(("", continuation))
                continue
            n_spaces = len(context) - len(context.rstrip())
            if n_spaces:
                continuation = context[-n_spaces:] + continuation
                context = context[:-n_spaces]
            pairs.append((context, continuation))
        wholes = self.encode([c + x for c, x in pairs])
        contexts = self.encode([c for c, _ in pairs])
        encoded = [(ctx, whole[len(ctx) :]) for ctx, whole in zip(contexts, wholes, strict=True)]
        if empty:
            alone = self.encode([pairs[i][1] for i in empty], add_special_tokens=False)
            for i, continuation in zip(empty, alone, strict=True):
                if continuation and continuation[0] == self.prefix_token_id:
                    encoded[i] = (continuation[:1], continuation[1:])
                else:
                    encoded[i] = ([self.prefix_token_id], continuation)
        return encoded

    def rolling_windows(self, tokens: list[int]) -> list[TokenRequest]:
        """The harness's disjoint rolling windows over a document's tokens (context_len=1)."""
        windows: list[TokenRequest] = []
        if not tokens:
            return windows
        length = self.max_length
        first = min(length, len(tokens))
        windows.append(([self.prefix_token_id], tokens[:first]))
        predicted = first
        while predicted < len(tokens):
            pred_len = min(len(tokens) - predicted, length)
            end = predicted + pred_len
            context = tokens[max(end - length - 1, 0) : end - 1]
            continuation = tokens[end - pred_len : end]
            windows.append((context[: len(context) - (len(continuation) - 1)], continuation))
            predicted += pred_len
        return windows

    # ---- scoring ---------------------------------------------------------------------------

    def loglikelihood(
        self, requests: Sequence[Request], progress: Progress | None = None
    ) -> list[Score]:
        """The harness's `loglikelihood` of each (context, continuation) string pair."""
        return self.score_tokens(self.encode_requests(requests), progress)

    def loglikelihood_rolling(
        self, texts: Sequence[str], progress: Progress | None = None
    ) -> list[tuple[float, int]]:
        """Each text's total log-likelihood over rolling windows, and its token count."""
        tokens = self.encode(texts)
        windows, owner = [], []
        for index, ids in enumerate(tokens):
            for window in self.rolling_windows(ids):
                windows.append(window)
                owner.append(index)
        totals = [0.0] * len(texts)
        for index, score in zip(owner, self.score_tokens(windows, progress), strict=True):
            totals[index] += score.loglikelihood
        return [(total, len(ids)) for total, ids in zip(totals, tokens, strict=True)]

    def score_tokens(
        self, requests: Sequence[TokenRequest], progress: Progress | None = None
    ) -> list[Score]:
        """Score token-level requests, longest first in batches; results in request order."""
        inputs = [self._window(context, continuation) for context, continuation in requests]
        order = sorted(range(len(inputs)), key=lambda i: -len(inputs[i]))
        results: list[Score | None] = [None] * len(inputs)
        with self._inference():
            for start in range(0, len(order), self.batch_size):
                batch = order[start : start + self.batch_size]
                scores = self._score_batch(
                    [inputs[i] for i in batch], [requests[i][1] for i in batch]
                )
                for i, score in zip(batch, scores, strict=True):
                    results[i] = score
                if progress is not None:
                    progress(len(batch))
        return results  # type: ignore[return-value]

    def _window(self, context: list[int], continuation: list[int]) -> list[int]:
        if not continuation:
            raise InputError("a continuation encodes to no tokens; every choice needs text")
        if len(continuation) > self.max_length:
            raise InputError(
                f"a continuation of {len(continuation)} tokens is longer than the model's "
                f"maximum length {self.max_length}; shorten the choice"
            )
        return (context + continuation)[-(self.max_length + 1) :][:-1]

    def _score_batch(self, windows: list[list[int]], continuations: list[list[int]]) -> list[Score]:
        device = self.device
        width = max(len(w) for w in windows)
        ids = torch.zeros((len(windows), width), dtype=torch.long)
        rows, cols, targets = [], [], []
        for row, (window, continuation) in enumerate(zip(windows, continuations, strict=True)):
            ids[row, : len(window)] = torch.tensor(window)
            first = len(window) - len(continuation)
            rows.extend([row] * len(continuation))
            cols.extend(range(first, len(window)))
            targets.extend(continuation)
        with self._autocast():
            hidden = self.model.hidden_states(ids.to(device))  # (B, T, d)
        scored = hidden[torch.tensor(rows, device=device), torch.tensor(cols, device=device)]
        logprobs, greedy = self._target_logprobs(scored, torch.tensor(targets, device=device))
        sizes = [len(c) for c in continuations]
        return [
            Score(float(lp.sum()), bool(g.all()))
            for lp, g in zip(logprobs.split(sizes), greedy.split(sizes), strict=True)
        ]

    def _target_logprobs(
        self, hidden: torch.Tensor, targets: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """log p(target) and argmax == target at each scored position (N, d) -> (N,), (N,),
        projecting a chunk of positions at a time."""
        vocab = self.model.config.vocab_size
        chunk = max(1, LOGIT_CHUNK_ELEMENTS // vocab)
        logprobs, greedy = [], []
        for h, t in zip(hidden.split(chunk), targets.split(chunk), strict=True):
            with self._autocast():
                logits = self.model.project(h)
            logits = torch.log_softmax(logits.float(), dim=-1)  # (n, V)
            logprobs.append(logits.gather(1, t[:, None]).squeeze(1))
            greedy.append(logits.argmax(dim=-1) == t)
        return torch.cat(logprobs).cpu(), torch.cat(greedy).cpu()

    @contextlib.contextmanager
    def _inference(self) -> Iterator[None]:
        """Eval mode and no autograd for the duration; the model's mode is restored after
        (the training loop calls in with a model in train mode)."""
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                yield
        finally:
            self.model.train(was_training)

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)
