"""KV-cache decoding equals full forward passes: step by step, with multi-token prefill after a
cache (Pion's bug), with left-padded batches, with soft-capping; and the sampling controls."""

import pytest
import torch

from smelt.errors import InputError
from smelt.model import generate, generate_stream, sample_next, stream

ATOL = 1e-5


@pytest.mark.parametrize("softcap", [None, 3.0])
def test_cached_logits_equal_full_forward_at_every_step(make_model, softcap):
    model = make_model(attn_softcap=softcap, final_softcap=softcap)
    torch.manual_seed(5)
    seq = torch.randint(0, 97, (2, 30))
    with torch.no_grad():
        full = model.logits(seq)  # (2, 30, V)
        cache = model.new_cache(2, 30)
        # multi-token prefill from an empty cache, then a multi-token prefill after a cache,
        # then one token at a time
        pieces = [(0, 6), (6, 13), *((t, t + 1) for t in range(13, 30))]
        for start, end in pieces:
            step = model.logits(seq[:, start:end], cache=cache)
            torch.testing.assert_close(step, full[:, start:end], atol=ATOL, rtol=ATOL)
    assert cache.length == 30


def test_left_padded_batch_equals_each_prompt_alone(model):
    torch.manual_seed(6)
    prompts = [torch.randint(0, 97, (n,)).tolist() for n in (9, 4, 1)]
    settings = dict(max_new_tokens=8, temperature=0)
    batched = generate(model, prompts, **settings)
    alone = [generate(model, [p], **settings)[0] for p in prompts]
    assert batched == alone
    # and the logits themselves: padded prefill + cached steps vs unpadded full forwards
    width = 9
    idx = torch.zeros(3, width, dtype=torch.long)
    valid = torch.zeros(3, width, dtype=torch.bool)
    for b, p in enumerate(prompts):
        idx[b, width - len(p) :] = torch.tensor(p)
        valid[b, width - len(p) :] = True
    with torch.no_grad():
        cache = model.new_cache(3, width + 1)
        last = model.logits(idx, cache=cache, key_valid=valid)[:, -1]
        for b, p in enumerate(prompts):
            ref = model.logits(torch.tensor([p]))[0, -1]
            torch.testing.assert_close(last[b], ref, atol=ATOL, rtol=ATOL)


def test_greedy_generation_equals_uncached_greedy_loop(model):
    prompt = [3, 14, 15, 92, 65]
    ours = generate(model, [prompt], max_new_tokens=12, temperature=0)[0]
    seq = list(prompt)
    with torch.no_grad():
        for _ in range(12):
            seq.append(int(model.logits(torch.tensor([seq]))[0, -1].argmax()))
    assert ours == seq[len(prompt) :]


def test_stop_tokens_streaming_and_restored_mode(model):
    prompt = [1, 2, 3]
    greedy = generate(model, [prompt], max_new_tokens=10, temperature=0)[0]
    stop_at = greedy[4]
    first = greedy.index(stop_at)
    stopped = generate(model, [prompt], max_new_tokens=10, temperature=0, stop_token_ids=[stop_at])
    assert stopped[0] == greedy[:first]
    model.train()
    streamed = list(stream(model, prompt, max_new_tokens=10, temperature=0))
    assert model.training  # restored after generation
    assert streamed == greedy
    steps = list(generate_stream(model, [prompt, [4, 5]], max_new_tokens=3, temperature=0))
    assert len(steps) == 3 and all(len(s) == 2 for s in steps)


def test_sampling_controls():
    logits = torch.tensor([[1.0, 3.0, 2.0, -1.0]])
    gen = torch.Generator().manual_seed(0)
    assert sample_next(logits, temperature=0).item() == 1
    assert all(sample_next(logits, top_k=1, generator=gen).item() == 1 for _ in range(20))
    assert all(sample_next(logits, top_p=0.01, generator=gen).item() == 1 for _ in range(20))
    top2 = {sample_next(logits, top_k=2, temperature=5.0, generator=gen).item() for _ in range(200)}
    assert top2 == {1, 2}
    seen = torch.tensor([[False, True, False, False]])
    # penalty 10 turns 3.0 into 0.3: token 2 (2.0) becomes the greedy choice
    assert sample_next(logits, temperature=0, repetition_penalty=10.0, seen=seen).item() == 2


def test_seeded_sampling_is_reproducible(model):
    def run():
        gen = torch.Generator().manual_seed(42)
        return generate(
            model,
            [[5, 6, 7]],
            max_new_tokens=10,
            temperature=1.0,
            top_k=20,
            top_p=0.9,
            repetition_penalty=1.2,
            generator=gen,
        )

    assert run() == run()


def test_generation_input_errors(model):
    with pytest.raises(InputError, match="max_seq_len"):
        generate(model, [[1] * 60], max_new_tokens=10)
    with pytest.raises(InputError, match="temperature"):
        generate(model, [[1]], temperature=-1)
    with pytest.raises(InputError, match="token"):
        generate(model, [[]])
    with pytest.raises(InputError, match="vocab|\\[0"):
        generate(model, [[1000]])
