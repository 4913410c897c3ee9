"""Continuous batching: concurrent requests decode together, joining and leaving between steps.

One engine thread owns the model. Each iteration it drops rows that finished or whose client
went away, admits waiting requests into the free rows (up to `max_batch`), prefills them
together, and decodes one token for every row in a single forward pass.

The rows share one KV cache whose columns are right-aligned: every row's tokens end at the
newest column and start wherever its prompt began, with `valid` (B, L) marking real positions.
The decoder masks invalid keys and counts RoPE positions over valid ones only (smelt.model's
left-padding support), so a row decodes exactly as it would alone. When rows join or leave the
cache is rebuilt from the surviving rows, trimming columns no row uses any more, so its width
stays the longest live sequence plus some headroom. An idle engine waits `gather_s` (5 ms) after
the first new request, so requests sent together are prefilled together.

Requests report through a sink (a callable taking `Event`s, called on the engine thread): one
event per new token, then one with the finish reason ('stop', 'length', 'cancelled', 'error').
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from smelt.errors import InputError
from smelt.model.attention import KVCache
from smelt.model.decoder import Decoder
from smelt.model.generate import check_settings, sample_next

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sampling:
    """How one request samples and when it stops (the settings of smelt.model.generate)."""

    max_new_tokens: int
    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    repetition_penalty: float = 1.0
    stop_ids: tuple[int, ...] = ()
    seed: int | None = None

    def __post_init__(self) -> None:
        check_settings(
            self.temperature, self.top_k, self.top_p, self.repetition_penalty, self.max_new_tokens
        )


@dataclass(frozen=True)
class Event:
    """A new token, or the end of a request (`finish` set, `token` None)."""

    token: int | None = None
    finish: str | None = None  # 'stop' | 'length' | 'cancelled' | 'error'
    error: str | None = None


Sink = Callable[[Event], None]


@dataclass(eq=False)
class Request:
    """A prompt in the engine. `cancel()` is safe from any thread; the row is freed at the
    next step."""

    id: int
    prompt: list[int]
    sampling: Sampling
    sink: Sink
    generated: int = 0
    finished: bool = False
    cancelled: bool = False
    cancel_reason: str = "cancelled"

    def cancel(self, reason: str = "cancelled") -> None:
        """Free the row at the next step; `reason` 'stop' when the caller found a stop string."""
        self.cancel_reason = reason
        self.cancelled = True


@dataclass
class EngineStats:
    """Counters for /health and the benchmark."""

    active: int = 0  # rows decoding now
    waiting: int = 0  # submitted, not admitted yet
    completed: int = 0  # finished by a stop token or the length limit
    cancelled: int = 0  # freed because the client cancelled or went away
    failed: int = 0
    peak_batch: int = 0  # most rows ever decoded in one step
    generated_tokens: int = 0


@dataclass(eq=False)
class _Row:
    request: Request
    last: int = 0  # the token to feed next
    seen: torch.Tensor | None = None  # (V,) bool, for the repetition penalty
    generator: torch.Generator | None = None


@dataclass
class _Batch:
    """The live rows and their shared, right-aligned KV cache."""

    rows: list[_Row] = field(default_factory=list)
    cache: KVCache | None = None
    valid: torch.Tensor | None = None  # (B, cache.length) bool


class Engine:
    """Serve `model` to concurrent requests; `start()` runs the engine thread, or call `step()`."""

    def __init__(
        self, model: Decoder, max_batch: int = 8, headroom: int = 64, gather_s: float = 0.005
    ) -> None:
        if max_batch < 1:
            raise InputError(f"max_batch must be at least 1, got {max_batch}")
        self.model = model.eval()
        self.max_batch = max_batch
        self.headroom = headroom
        self.gather_s = gather_s
        self.device = model.embed.weight.device
        self._ids = itertools.count(1)
        self._waiting: deque[Request] = deque()
        self._wakeup = threading.Condition()
        self._batch = _Batch()
        self._stats = EngineStats()
        self._thread: threading.Thread | None = None
        self._closing = False

    # ---- the public side -----------------------------------------------------------------

    def submit(self, prompt: Sequence[int], sampling: Sampling, sink: Sink) -> Request:
        """Queue a request; its events go to `sink` on the engine thread."""
        prompt = [int(t) for t in prompt]
        config = self.model.config
        if not prompt:
            raise InputError("a request needs at least one prompt token")
        if any(t < 0 or t >= config.vocab_size for t in prompt):
            raise InputError(f"prompt token ids must be in [0, {config.vocab_size})")
        if len(prompt) + sampling.max_new_tokens > config.max_seq_len:
            raise InputError(
                f"prompt ({len(prompt)} tokens) + max_new_tokens ({sampling.max_new_tokens}) "
                f"exceeds the model's context of {config.max_seq_len} tokens"
            )
        request = Request(next(self._ids), prompt, sampling, sink)
        with self._wakeup:
            self._waiting.append(request)
            self._wakeup.notify()
        return request

    @property
    def stats(self) -> EngineStats:
        with self._wakeup:
            waiting = sum(not r.cancelled for r in self._waiting)
        active = sum(not row.request.finished for row in self._batch.rows)
        return EngineStats(**{**vars(self._stats), "active": active, "waiting": waiting})

    def start(self) -> Engine:
        self._thread = threading.Thread(target=self._run, name="smelt-engine", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop the thread; requests still running end with 'cancelled'."""
        with self._wakeup:
            self._closing = True
            self._wakeup.notify()
        if self._thread is not None:
            self._thread.join(timeout=30)
        for request in [*self._waiting, *(row.request for row in self._batch.rows)]:
            self._finish(request, "cancelled")
        self._waiting.clear()
        self._batch = _Batch()

    def _run(self) -> None:
        while True:
            with self._wakeup:
                while not self._closing and not self._waiting and not self._batch.rows:
                    self._wakeup.wait()
                if self._closing:
                    return
                if not self._batch.rows:  # idle: let requests sent together arrive together
                    deadline = time.monotonic() + self.gather_s
                    while len(self._waiting) < self.max_batch and not self._closing:
                        left = deadline - time.monotonic()
                        if left <= 0:
                            break
                        self._wakeup.wait(left)
            self.step()

    # ---- one iteration ---------------------------------------------------------------------

    @torch.inference_mode()
    def step(self) -> None:
        """Free, admit, decode: one engine iteration (the thread calls it in a loop). Rows are
        freed before admitting, so a cancelled request's slot goes to a waiting one at once,
        and again after, for requests whose first token already ended them."""
        try:
            self._drop_finished()
            self._admit()
            self._drop_finished()
            if self._batch.rows:
                self._decode()
        except Exception as exc:  # noqa: BLE001 - fail the requests, keep serving
            log.exception("engine step failed")
            for row in self._batch.rows:
                self._finish(row.request, "error", f"{type(exc).__name__}: {exc}")
            self._batch = _Batch()

    def _admit(self) -> None:
        admitted: list[Request] = []
        with self._wakeup:
            while self._waiting and len(self._batch.rows) + len(admitted) < self.max_batch:
                request = self._waiting.popleft()
                if request.cancelled:
                    self._finish(request, request.cancel_reason)
                elif request.sampling.max_new_tokens == 0:
                    self._finish(request, "length")
                else:
                    admitted.append(request)
        if not admitted:
            return
        width = max(len(r.prompt) for r in admitted)
        idx = torch.zeros(len(admitted), width, dtype=torch.long, device=self.device)
        valid = torch.zeros(len(admitted), width, dtype=torch.bool, device=self.device)
        for b, request in enumerate(admitted):  # left-padded, like smelt.model.generate
            idx[b, width - len(request.prompt) :] = torch.tensor(request.prompt)
            valid[b, width - len(request.prompt) :] = True
        cache = self.model.new_cache(len(admitted), width)
        padded = not bool(valid.all())
        logits = self.model.logits(
            idx, cache=cache, key_valid=valid if padded else None, last_only=True
        )[:, -1]  # (n, V)
        rows = [self._new_row(request) for request in admitted]
        old = self._batch
        parts = [(old.cache, old.valid, list(range(len(old.rows))))] if old.rows else []
        parts.append((cache, valid, list(range(len(rows)))))
        self._batch = _Batch(old.rows + rows, *self._compose(parts))
        self._stats.peak_batch = max(self._stats.peak_batch, len(self._batch.rows))
        self._emit(rows, logits)

    def _drop_finished(self) -> None:
        batch = self._batch
        keep = []
        for i, row in enumerate(batch.rows):
            if row.request.cancelled and not row.request.finished:
                self._finish(row.request, row.request.cancel_reason)
            if not row.request.finished:
                keep.append(i)
        if len(keep) == len(batch.rows):
            return
        if not keep:
            self._batch = _Batch()
            return
        cache, valid = self._compose([(batch.cache, batch.valid, keep)])
        self._batch = _Batch([batch.rows[i] for i in keep], cache, valid)

    def _decode(self) -> None:
        batch = self._batch
        if batch.cache.length == batch.cache.max_len:  # out of headroom: re-lay the cache
            batch.cache, batch.valid = self._compose(
                [(batch.cache, batch.valid, list(range(len(batch.rows))))]
            )
        tokens = torch.tensor([[row.last] for row in batch.rows], device=self.device)  # (B, 1)
        valid = torch.cat([batch.valid, batch.valid.new_ones(len(batch.rows), 1)], dim=1)
        padded = not bool(valid.all())
        logits = self.model.logits(
            tokens, cache=batch.cache, key_valid=valid if padded else None, last_only=True
        )[:, -1]  # (B, V)
        batch.valid = valid
        self._stats.peak_batch = max(self._stats.peak_batch, len(batch.rows))
        self._emit(batch.rows, logits)

    # ---- pieces ----------------------------------------------------------------------------

    def _new_row(self, request: Request) -> _Row:
        sampling = request.sampling
        row = _Row(request)
        if sampling.repetition_penalty != 1.0:
            row.seen = torch.zeros(
                self.model.config.vocab_size, dtype=torch.bool, device=self.device
            )
            row.seen[torch.tensor(request.prompt, device=self.device)] = True
        if sampling.seed is not None and sampling.temperature > 0:
            row.generator = torch.Generator(device=self.device).manual_seed(sampling.seed)
        return row

    def _emit(self, rows: list[_Row], logits: torch.Tensor) -> None:
        """Sample one token per row from its logits (B, V) and report it."""
        greedy = [i for i, row in enumerate(rows) if _plain_greedy(row.request.sampling)]
        chosen: dict[int, int] = {}
        if greedy:  # one argmax for all plain greedy rows
            picks = logits[greedy].argmax(dim=-1).tolist()
            chosen.update(zip(greedy, picks, strict=True))
        for i, row in enumerate(rows):
            if i in chosen:
                continue
            s = row.request.sampling
            chosen[i] = int(
                sample_next(
                    logits[i : i + 1],
                    temperature=s.temperature,
                    top_k=s.top_k,
                    top_p=s.top_p,
                    repetition_penalty=s.repetition_penalty,
                    seen=None if row.seen is None else row.seen[None],
                    generator=row.generator,
                )[0]
            )
        for i, row in enumerate(rows):
            self._accept(row, chosen[i])

    def _accept(self, row: _Row, token: int) -> None:
        request = row.request
        if request.finished:
            return
        if token in request.sampling.stop_ids:
            self._finish(request, "stop")
            return
        row.last = token
        if row.seen is not None:
            row.seen[token] = True
        request.generated += 1
        self._stats.generated_tokens += 1
        self._send(request, Event(token=token))
        if request.generated >= request.sampling.max_new_tokens:
            self._finish(request, "length")

    def _finish(self, request: Request, reason: str, error: str | None = None) -> None:
        if request.finished:
            return
        request.finished = True
        counter = {"stop": "completed", "length": "completed", "cancelled": "cancelled"}
        name = counter.get(reason, "failed")
        setattr(self._stats, name, getattr(self._stats, name) + 1)
        self._send(request, Event(finish=reason, error=error))

    def _send(self, request: Request, event: Event) -> None:
        try:
            request.sink(event)
        except Exception:  # noqa: BLE001 - a consumer that is gone must not stop the others
            log.debug("request %d: sink failed; cancelling it", request.id, exc_info=True)
            request.cancelled = True

    def _compose(
        self, parts: list[tuple[KVCache, torch.Tensor, list[int]]]
    ) -> tuple[KVCache, torch.Tensor]:
        """A fresh cache holding the given rows of each part, right-aligned, with the columns
        no row uses dropped and `headroom` free columns after the newest."""
        pieces = []
        for cache, valid, rows in parts:
            index = torch.tensor(rows, device=self.device)
            rows_valid = valid[index]  # (n, L)
            used = rows_valid.any(dim=0).nonzero()
            first = int(used[0]) if len(used) else rows_valid.shape[1]
            pieces.append((cache, index, rows_valid[:, first:], first))
        length = max(v.shape[1] for _, _, v, _ in pieces)
        batch = sum(len(index) for _, index, _, _ in pieces)
        template = parts[0][0]
        merged = self.model.new_cache(batch, length + self.headroom, dtype=template.k[0].dtype)
        merged_valid = torch.zeros(batch, length, dtype=torch.bool, device=self.device)
        row = 0
        for cache, index, rows_valid, first in pieces:
            n, width = rows_valid.shape
            for layer in range(len(merged.k)):
                for src, dst in ((cache.k, merged.k), (cache.v, merged.v)):
                    dst[layer][row : row + n, :, length - width : length] = src[layer][
                        index, :, first : first + width
                    ]
            merged_valid[row : row + n, length - width :] = rows_valid
            row += n
        merged.advance(length)
        return merged, merged_valid


def _plain_greedy(sampling: Sampling) -> bool:
    return sampling.temperature == 0 and sampling.repetition_penalty == 1.0
