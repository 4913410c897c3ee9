"""Fixtures for smelt.model tests: tiny configs that build and run in milliseconds on a CPU."""

from __future__ import annotations

import pytest
import torch

from smelt.model import Decoder, ModelConfig


def tiny_config(**overrides) -> ModelConfig:
    """2 layers x 64 wide, GQA 4/2, QK-norm; larger init so logits are not all ~0."""
    base = dict(
        vocab_size=97,
        d_model=64,
        n_layers=2,
        n_heads=4,
        n_kv_heads=2,
        ffn_hidden=96,
        max_seq_len=64,
        qk_norm=True,
        init_std=0.1,
        rope_theta=1000.0,
    )
    return ModelConfig(**{**base, **overrides})


def tiny_model(seed: int = 0, **overrides) -> Decoder:
    torch.manual_seed(seed)
    model = Decoder(tiny_config(**overrides))
    with torch.no_grad():  # non-trivial norm weights, so the tests see them
        for name, param in model.named_parameters():
            if name.endswith("norm.weight"):
                param.add_(0.2 * torch.randn_like(param))
    return model.eval()


@pytest.fixture(autouse=True)
def _single_thread():
    """Tiny matmuls on a shared 2-core machine: OpenMP thread hand-offs cost more than the math
    (30 ms per 64x96 matmul under load with 2 threads, microseconds with 1). Restored after."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def make_config():
    """Factory: tiny_config(**overrides)."""
    return tiny_config


@pytest.fixture
def make_model():
    """Factory: tiny_model(seed=0, **overrides), in eval mode."""
    return tiny_model


@pytest.fixture
def model() -> Decoder:
    return tiny_model()


@pytest.fixture
def tokens() -> torch.Tensor:
    torch.manual_seed(1)
    return torch.randint(0, 97, (2, 24))
