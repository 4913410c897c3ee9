"""The batching engine: every request decodes exactly as it would alone, whenever it joins;
cancelled requests free their row; the batch never exceeds its limit."""

from __future__ import annotations

import pytest
import torch

from smelt.errors import InputError
from smelt.model.generate import generate
from smelt.serving.engine import Engine, Sampling


class Collect:
    """A sink that keeps the events of one request."""

    def __init__(self) -> None:
        self.events = []

    def __call__(self, event) -> None:
        self.events.append(event)

    @property
    def tokens(self) -> list[int]:
        return [e.token for e in self.events if e.token is not None]

    @property
    def finish(self) -> str | None:
        return self.events[-1].finish if self.events else None


def _prompts() -> list[list[int]]:
    torch.manual_seed(3)
    return [torch.randint(4, 97, (n,)).tolist() for n in (9, 3, 17, 1, 6)]


def test_requests_joining_at_any_step_decode_as_if_alone(tiny_decoder):
    engine = Engine(tiny_decoder, max_batch=4, headroom=3)  # small headroom: the cache regrows
    prompts = _prompts()
    greedy = Sampling(max_new_tokens=12, temperature=0)
    sampled = Sampling(max_new_tokens=12, temperature=0.9, top_k=20, top_p=0.9, seed=7)
    penalized = Sampling(max_new_tokens=12, temperature=0, repetition_penalty=1.3)
    plan = [  # (step at which it is submitted, prompt, sampling)
        (0, prompts[0], greedy),
        (0, prompts[1], sampled),
        (2, prompts[2], greedy),
        (5, prompts[3], penalized),
        (5, prompts[4], greedy),  # waits: four rows are busy
    ]
    sinks = [Collect() for _ in plan]
    for step in range(40):
        for (at, prompt, sampling), sink in zip(plan, sinks, strict=True):
            if at == step:
                engine.submit(prompt, sampling, sink)
        engine.step()
    for (_, prompt, sampling), sink in zip(plan, sinks, strict=True):
        generator = torch.Generator().manual_seed(sampling.seed) if sampling.seed else None
        alone = generate(
            tiny_decoder,
            [prompt],
            max_new_tokens=sampling.max_new_tokens,
            temperature=sampling.temperature,
            top_k=sampling.top_k,
            top_p=sampling.top_p,
            repetition_penalty=sampling.repetition_penalty,
            generator=generator,
        )[0]
        assert sink.tokens == alone
        assert sink.finish == "length"
    stats = engine.stats
    assert stats.completed == 5 and stats.active == 0 and stats.peak_batch == 4


def test_a_stop_token_ends_the_request(tiny_decoder):
    prompt = _prompts()[0]
    alone = generate(tiny_decoder, [prompt], max_new_tokens=10, temperature=0)[0]
    engine = Engine(tiny_decoder)
    sink = Collect()
    engine.submit(prompt, Sampling(max_new_tokens=10, temperature=0, stop_ids=(alone[3],)), sink)
    for _ in range(12):
        engine.step()
    assert sink.tokens == alone[: alone.index(alone[3])] and sink.finish == "stop"


def test_cancelling_frees_the_row_for_the_next_request(tiny_decoder):
    engine = Engine(tiny_decoder, max_batch=1)
    long, short = Collect(), Collect()
    prompts = _prompts()
    first = engine.submit(prompts[0], Sampling(max_new_tokens=40, temperature=0), long)
    engine.submit(prompts[1], Sampling(max_new_tokens=3, temperature=0), short)
    for _ in range(3):
        engine.step()
    assert len(long.tokens) == 4 and short.events == []  # one slot, taken
    first.cancel()
    engine.step()  # the row is dropped and the waiting request admitted in the same step
    assert long.finish == "cancelled" and len(long.tokens) == 4
    assert len(short.tokens) == 2
    engine.step()
    assert short.finish == "length"
    stats = engine.stats
    assert (stats.cancelled, stats.completed, stats.active, stats.peak_batch) == (1, 1, 0, 1)


def test_a_request_cancelled_while_waiting_never_runs(tiny_decoder):
    engine = Engine(tiny_decoder)
    sink = Collect()
    engine.submit(_prompts()[0], Sampling(max_new_tokens=5, temperature=0), sink).cancel()
    engine.step()
    assert sink.tokens == [] and sink.finish == "cancelled"


def test_the_engine_thread_serves_and_closes(tiny_decoder):
    import queue

    engine = Engine(tiny_decoder).start()
    events: queue.Queue = queue.Queue()
    engine.submit(_prompts()[2], Sampling(max_new_tokens=5, temperature=0), events.put)
    got = [events.get(timeout=30) for _ in range(6)]
    engine.close()
    assert [e.token is not None for e in got] == [True] * 5 + [False]
    assert got[-1].finish == "length"


def test_submit_checks_the_context_and_ids(tiny_decoder):
    engine = Engine(tiny_decoder)
    with pytest.raises(InputError, match="exceeds the model's context of 64"):
        engine.submit([1] * 60, Sampling(max_new_tokens=5), Collect())
    with pytest.raises(InputError, match=r"in \[0, 97\)"):
        engine.submit([500], Sampling(max_new_tokens=5), Collect())
    with pytest.raises(InputError, match="temperature"):
        Sampling(max_new_tokens=5, temperature=-1)
