"""Attention: causality, GQA against a reference multi-head attention, document masking,
FlexAttention against SDPA, soft-capping consistency."""

import math
import warnings

import pytest
import torch

from smelt.errors import InputError
from smelt.model.attention import FLEX_AVAILABLE, Attention, AttentionMask


def test_changing_a_future_token_never_changes_past_logits(model, tokens):
    with torch.no_grad():
        base = model.logits(tokens)
        for t in (0, 7, 22):
            changed = tokens.clone()
            changed[:, t + 1] = (changed[:, t + 1] + 1) % 97
            other = model.logits(changed)
            assert torch.equal(base[:, : t + 1], other[:, : t + 1])
            assert not torch.allclose(base[:, t + 1], other[:, t + 1])


def _reference_mha(attn: Attention, x: torch.Tensor, theta: float) -> torch.Tensor:
    """Textbook causal multi-head attention written independently of smelt's attention path:
    per-head loops, explicit RoPE rotation angles, explicit softmax."""
    B, T, _ = x.shape
    nh, hd = attn.n_heads, attn.head_dim
    q = (x @ attn.q_proj.weight.T).view(B, T, nh, hd)
    k = (x @ attn.k_proj.weight.T).view(B, T, nh, hd)
    v = (x @ attn.v_proj.weight.T).view(B, T, nh, hd)
    if attn.q_norm is not None:

        def rms(t, w):
            return t * torch.rsqrt(t.pow(2).mean(-1, keepdim=True) + 1e-5) * w

        q, k = rms(q, attn.q_norm.weight), rms(k, attn.k_norm.weight)
    half = hd // 2
    freqs = torch.tensor([theta ** (-2 * i / hd) for i in range(half)])
    angle = torch.arange(T)[:, None] * freqs[None, :]  # (T, hd/2)
    cos, sin = angle.cos()[None, :, None, :], angle.sin()[None, :, None, :]

    def rotate(t):  # pair channel i with channel i + hd/2
        a, b = t[..., :half], t[..., half:]
        return torch.cat([a * cos - b * sin, b * cos + a * sin], dim=-1)

    q, k = rotate(q), rotate(k)
    out = torch.zeros(B, T, nh, hd)
    for h in range(nh):
        scores = q[:, :, h] @ k[:, :, h].transpose(1, 2) / math.sqrt(hd)  # (B, T, T)
        scores = scores.masked_fill(torch.ones(T, T).triu(1).bool(), float("-inf"))
        out[:, :, h] = scores.softmax(-1) @ v[:, :, h]
    return out.reshape(B, T, nh * hd) @ attn.o_proj.weight.T


@pytest.mark.parametrize("qk_norm", [False, True])
def test_gqa_with_all_kv_heads_equals_reference_mha(make_model, qk_norm):
    model = make_model(n_kv_heads=4, qk_norm=qk_norm)
    attn = model.layers[0].attn
    x = torch.randn(2, 10, 64)
    rope = model.rotary(0, 10)
    with torch.no_grad():
        ours = attn(x, rope, AttentionMask(causal=True))
        ref = _reference_mha(attn, x, model.config.rope_theta)
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-4)


def test_gqa_equals_mha_with_repeated_kv_heads(make_model):
    """n_kv_heads=2 of 4: query heads (0,1) share kv head 0 and (2,3) share kv head 1."""
    gqa = make_model(n_kv_heads=2)
    mha = make_model(n_kv_heads=4)
    state = gqa.state_dict()
    hd = gqa.config.head_dim
    for key, value in list(state.items()):
        if key.endswith(("k_proj.weight", "v_proj.weight")):
            heads = value.view(2, hd, -1)
            state[key] = heads.repeat_interleave(2, dim=0).reshape(4 * hd, -1)
    mha.load_state_dict(state)
    x = torch.randint(0, 97, (2, 12))
    with torch.no_grad():
        torch.testing.assert_close(gqa.logits(x), mha.logits(x), atol=1e-5, rtol=1e-5)


def test_document_mask_blocks_cross_document_attention(model):
    torch.manual_seed(3)
    tokens = torch.randint(0, 97, (1, 20))
    doc_ids = torch.tensor([[0] * 8 + [1] * 12])
    with torch.no_grad():
        packed = model.logits(tokens, doc_ids=doc_ids)
        changed = tokens.clone()
        changed[0, :8] = (changed[0, :8] + 5) % 97  # rewrite document 0 only
        packed_changed = model.logits(changed, doc_ids=doc_ids)
        alone = model.logits(tokens[:, 8:])  # document 1 on its own (RoPE is relative)
        unmasked = model.logits(changed)
    torch.testing.assert_close(packed[:, 8:], packed_changed[:, 8:], atol=0, rtol=0)
    torch.testing.assert_close(packed[:, 8:], alone, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(unmasked[:, 8:], packed_changed[:, 8:], atol=1e-4)


def test_document_mask_with_a_cache_is_refused(model, tokens):
    cache = model.new_cache(2, 32)
    with pytest.raises(InputError, match="doc_ids"):
        model.logits(tokens, doc_ids=torch.zeros_like(tokens), cache=cache)


@pytest.mark.skipif(not FLEX_AVAILABLE, reason="FlexAttention needs torch >= 2.5")
@pytest.mark.parametrize("softcap", [None, 5.0])
def test_flex_attention_path_equals_sdpa_path(make_model, softcap):
    """The CUDA path (FlexAttention block mask + soft-cap score_mod), run eagerly on CPU."""
    model = make_model(attn_softcap=softcap)
    tokens = torch.randint(0, 97, (2, 16))
    doc_ids = torch.tensor([[0] * 6 + [1] * 10, [0] * 16])
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.attention_backend = "sdpa"
        dense = model.logits(tokens, doc_ids=doc_ids)
        model.attention_backend = "flex"
        flex = model.logits(tokens, doc_ids=doc_ids)
    torch.testing.assert_close(flex, dense, atol=1e-4, rtol=1e-4)


def test_softcap_same_in_train_and_eval_and_bounded(make_model, tokens):
    model = make_model(attn_softcap=2.0, final_softcap=3.0, dropout=0.0)
    with torch.no_grad():
        eval_logits = model.logits(tokens)
        model.train()
        train_logits = model.logits(tokens)
        train_loss = model(tokens, tokens).loss
        model.eval()
        eval_loss = model(tokens, tokens).loss
    torch.testing.assert_close(train_logits, eval_logits, atol=0, rtol=0)
    torch.testing.assert_close(train_loss, eval_loss, atol=0, rtol=0)
    assert eval_logits.abs().max() <= 3.0
    ref = torch.nn.functional.cross_entropy(eval_logits.flatten(0, 1), tokens.flatten())
    torch.testing.assert_close(eval_loss, ref, atol=1e-5, rtol=1e-5)


def test_softcap_changes_logits_and_huge_cap_is_a_no_op(make_model, tokens):
    plain = make_model(attn_softcap=None)
    capped = make_model(attn_softcap=0.5)
    huge = make_model(attn_softcap=1e6)
    with torch.no_grad():
        base = plain.logits(tokens)
        assert not torch.allclose(capped.logits(tokens), base, atol=1e-3)
        torch.testing.assert_close(huge.logits(tokens), base, atol=1e-5, rtol=1e-5)


def test_sequence_longer_than_max_seq_len_is_refused(model):
    with pytest.raises(InputError, match="max_seq_len"):
        model.logits(torch.zeros(1, 65, dtype=torch.long))


def test_gqa_kernel_agrees_with_explicit_scores(make_model, tokens, monkeypatch):
    """SDPA's enable_gqa head grouping equals the explicit path's repeat_interleave grouping."""
    model = make_model(attn_softcap=1e6)
    assert model.config.n_kv_heads < model.config.n_heads  # grouped heads, or nothing is tested
    explicit_calls: list[int] = []
    real = Attention._attend_explicit

    def counted(self, *args, **kwargs):
        explicit_calls.append(1)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Attention, "_attend_explicit", counted)
    with torch.no_grad():
        explicit = model.logits(tokens)
        assert len(explicit_calls) == model.config.n_layers  # the capped run: explicit scores
        for layer in model.layers:
            layer.attn.softcap = None
        sdpa = model.logits(tokens)
    assert len(explicit_calls) == model.config.n_layers  # the uncapped run never took it
    torch.testing.assert_close(explicit, sdpa, atol=1e-5, rtol=1e-5)
