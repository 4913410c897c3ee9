"""Presets: every one builds (on the meta device, so the 1B one costs nothing) and its parameter
count matches what its source publishes.

How counts are compared: each entry of REFERENCE_COUNTS names the vocabulary the published count
was measured at; the preset is rebuilt at that vocabulary and its *total* count compared. All the
sources tie embeddings (or the count is ours), so this accounts for the embedding exactly rather
than estimating a non-embedding share. Published numbers are rounded ("~70M"), hence 5%.
"""

import pytest
import torch

from smelt.errors import ConfigError
from smelt.model import PRESETS, Decoder, generate, get_preset
from smelt.model.presets import DEFAULT_VOCAB, REFERENCE_COUNTS

REQUIRED = [
    "test",
    "small",
    "1b",
    "pyr-135m",
    "parchment-166m",
    *(f"pion-{s}" for s in ("nano", "micro", "small", "base", "large", "xl")),
]


def test_required_presets_exist_and_all_have_a_reference():
    assert set(REQUIRED) <= set(PRESETS)
    assert set(REFERENCE_COUNTS) == set(PRESETS)
    assert all(cfg.vocab_size == DEFAULT_VOCAB for cfg in PRESETS.values())


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_builds_on_meta_and_matches_published_count(name):
    published, vocab, _source = REFERENCE_COUNTS[name]
    cfg = get_preset(name, vocab_size=vocab)
    with torch.device("meta"):
        model = Decoder(cfg)
    counted = model.num_params()
    assert counted == cfg.num_params()
    assert abs(counted / published - 1) < 0.05, (
        f"{name}: {counted / 1e6:.1f}M vs {published / 1e6}M"
    )


def test_test_preset_is_about_6m_and_small_is_gpt2_sized():
    assert 5.5e6 < get_preset("test").num_params() < 6.5e6
    assert get_preset("small").n_layers == 12 and get_preset("small").d_model == 768


def test_seed_features():
    pyr = get_preset("pyr-135m")
    assert pyr.bitnet and pyr.activation == "relu2" and pyr.n_kv_heads == 4
    assert pyr.n_layers == 16 and pyr.d_model == 768
    assert get_preset("pion-base").qk_norm and get_preset("pion-base").n_kv_heads == 4
    assert not get_preset("parchment-166m").qk_norm


def test_get_preset_overrides_and_errors():
    assert get_preset("TEST", vocab_size=1000).vocab_size == 1000
    assert get_preset("test", max_seq_len=128).max_seq_len == 128
    with pytest.raises(ConfigError, match="valid presets: .*pion-nano"):
        get_preset("tiny")


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_tiny_variant_of_each_preset_trains_and_generates(name):
    """Same feature switches and GQA ratio as the preset, shrunk to 2 layers x 16-dim heads."""
    cfg = PRESETS[name]
    group = cfg.n_heads // cfg.n_kv_heads
    n_kv = 1 if group > 2 else 2
    tiny = cfg.replace(
        vocab_size=97,
        n_layers=2,
        n_heads=n_kv * group,
        n_kv_heads=n_kv,
        d_model=16 * n_kv * group,
        ffn_hidden=64,
        max_seq_len=32,
    )
    torch.manual_seed(0)
    model = Decoder(tiny)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    idx = torch.randint(0, 97, (2, 16))
    losses = []
    for _ in range(4):
        loss = model(idx[:, :-1], idx[:, 1:]).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    assert len(generate(model, [[1, 2, 3]], max_new_tokens=4, temperature=0)[0]) == 4
