"""ModelConfig: validation, JSON round trip, derived fields, analytic parameter count."""

import json

import pytest

from smelt.errors import ConfigError
from smelt.model import Decoder, ModelConfig
from smelt.model.config import default_ffn_hidden


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"d_model": 65}, "not divisible by n_heads"),
        ({"n_kv_heads": 3}, "multiple of n_kv_heads"),
        ({"d_model": 60, "n_heads": 4}, "odd"),  # head_dim 15
        ({"activation": "gelu"}, "activation"),
        ({"vocab_size": 0}, "vocab_size"),
        ({"dropout": 1.0}, "dropout"),
        ({"attn_softcap": -1.0}, "attn_softcap"),
        ({"norm_eps": 0}, "norm_eps"),
        ({"qk_norm": "yes"}, "qk_norm"),
    ],
)
def test_invalid_configs_raise_config_error_naming_the_field(make_config, changes, fragment):
    with pytest.raises(ConfigError, match=fragment):
        make_config(**changes)


def test_json_round_trip_and_derived_defaults():
    cfg = ModelConfig(d_model=512, n_heads=8)
    assert cfg.n_kv_heads == 8
    assert cfg.ffn_hidden == default_ffn_hidden(512, "swiglu") == 1408  # 8/3*512 -> x64
    assert ModelConfig(d_model=512, n_heads=8, activation="relu2").ffn_hidden == 2048
    data = json.loads(json.dumps(cfg.to_dict()))
    assert ModelConfig.from_dict(data) == cfg
    assert cfg.replace(vocab_size=123).vocab_size == 123


def test_from_dict_rejects_unknown_keys():
    with pytest.raises(ConfigError, match="d_modle"):
        ModelConfig.from_dict({"d_modle": 64})


@pytest.mark.parametrize(
    "changes",
    [{}, {"tie_embeddings": False}, {"activation": "relu2", "bitnet": True}, {"qk_norm": False}],
)
def test_analytic_param_count_matches_the_module(make_config, changes):
    cfg = make_config(**changes)
    model = Decoder(cfg)
    assert model.num_params() == cfg.num_params()
    assert model.num_params(exclude_embeddings=True) == cfg.num_params(exclude_embeddings=True)


def test_flops_per_token_counts_head_and_attention(make_config):
    cfg = make_config()
    model = Decoder(cfg)
    n_matmul = cfg.num_params(exclude_embeddings=True) + cfg.vocab_size * cfg.d_model
    attention = 12 * cfg.n_layers * cfg.n_heads * cfg.head_dim * 32
    assert model.estimate_flops_per_token(32) == pytest.approx(6 * n_matmul + attention)
    # the head is one (V, d) matmul whether it shares the embedding's weights or not
    untied = Decoder(make_config(tie_embeddings=False))
    assert model.output_weight is model.embed.weight
    assert untied.output_weight is not untied.embed.weight
    assert untied.estimate_flops_per_token(32) == model.estimate_flops_per_token(32)
