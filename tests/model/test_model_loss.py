"""Chunked cross-entropy equals F.cross_entropy (values and gradients) and never holds the full
(tokens x vocab) logits."""

import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from smelt.errors import ConfigError
from smelt.model.loss import chunked_cross_entropy, reference_cross_entropy


def _inputs(n=50, d=16, vocab=300, ignore_every=4, seed=0):
    torch.manual_seed(seed)
    hidden = torch.randn(n, d, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(vocab, d, dtype=torch.float64, requires_grad=True)
    targets = torch.randint(0, vocab, (n,))
    targets[::ignore_every] = -100
    return hidden, weight, targets


@pytest.mark.parametrize("chunk", [7, 16, 1000])
@pytest.mark.parametrize("softcap", [None, 4.0])
def test_values_and_gradients_equal_plain_cross_entropy(chunk, softcap):
    hidden, weight, targets = _inputs()
    ours = chunked_cross_entropy(hidden, weight, targets, softcap=softcap, chunk_tokens=chunk)
    gh, gw = torch.autograd.grad(2.5 * ours, (hidden, weight))
    ref = reference_cross_entropy(hidden, weight, targets, softcap=softcap)
    rh, rw = torch.autograd.grad(2.5 * ref, (hidden, weight))
    torch.testing.assert_close(ours.double(), ref.double(), atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(gh, rh, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(gw, rw, atol=1e-6, rtol=1e-6)


def test_sum_reduction_and_float32():
    hidden, weight, targets = _inputs()
    h32, w32 = hidden.detach().float(), weight.detach().float()
    ours = chunked_cross_entropy(h32, w32, targets, reduction="sum", chunk_tokens=8)
    ref = F.cross_entropy(h32 @ w32.T, targets, reduction="sum")
    torch.testing.assert_close(ours, ref, atol=1e-3, rtol=1e-5)
    with pytest.raises(ConfigError):
        chunked_cross_entropy(h32, w32, targets, reduction="none")


def test_all_ignored_gives_zero_not_nan():
    hidden, weight, targets = _inputs()
    loss = chunked_cross_entropy(hidden, weight, torch.full_like(targets, -100))
    loss.backward()
    assert loss.item() == 0.0 and hidden.grad.abs().sum() == 0


def test_no_grad_path_matches():
    hidden, weight, targets = _inputs()
    with torch.no_grad():
        ours = chunked_cross_entropy(hidden, weight, targets, chunk_tokens=9)
        ref = reference_cross_entropy(hidden, weight, targets)
    torch.testing.assert_close(ours, ref, atol=1e-6, rtol=1e-6)


def test_bf16_autocast_is_close_to_float32():
    hidden, weight, targets = _inputs()
    h32 = hidden.detach().float().requires_grad_()
    w32 = weight.detach().float().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = chunked_cross_entropy(h32, w32, targets, chunk_tokens=16)
    loss.backward()
    assert loss.dtype == torch.float32 and w32.grad.dtype == torch.float32
    ref = reference_cross_entropy(hidden, weight, targets)
    assert abs(loss.item() - ref.item()) < 0.05 * abs(ref.item())


class _LargestTensor(TorchDispatchMode):
    """Records the largest tensor any aten op produces (forward and backward)."""

    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, tuple | list) else (out,):
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.numel())
        return out


def test_never_materializes_full_logits():
    n, d, vocab, chunk = 512, 8, 2048, 64
    hidden = torch.randn(n, d, requires_grad=True)
    weight = torch.randn(vocab, d, requires_grad=True)
    targets = torch.randint(0, vocab, (n,))
    with _LargestTensor() as chunked:
        chunked_cross_entropy(hidden, weight, targets, chunk_tokens=chunk).backward()
    assert chunked.largest <= chunk * vocab < n * vocab
    with _LargestTensor() as plain:  # the probe does see full logits when they exist
        reference_cross_entropy(hidden, weight, targets).backward()
    assert plain.largest >= n * vocab


@pytest.mark.parametrize("chunk", [7, 1000])
@pytest.mark.parametrize("softcap", [None, 4.0])
def test_weighted_loss_and_gradients_equal_the_weighted_mean(chunk, softcap):
    hidden, weight, targets = _inputs()
    weights = torch.ones(len(targets), dtype=torch.float64)
    weights[5::6] = 3.0  # e.g. the end-of-turn tokens boosted
    ours = chunked_cross_entropy(
        hidden, weight, targets, softcap=softcap, chunk_tokens=chunk, weights=weights
    )
    gh, gw = torch.autograd.grad(ours, (hidden, weight))
    ref = reference_cross_entropy(hidden, weight, targets, softcap=softcap, weights=weights)
    rh, rw = torch.autograd.grad(ref, (hidden, weight))
    torch.testing.assert_close(ours.double(), ref.double(), atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(gh, rh, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(gw, rw, atol=1e-6, rtol=1e-6)
    plain = reference_cross_entropy(hidden, weight, targets, softcap=softcap)
    assert abs(ref.item() - plain.item()) > 1e-3  # the weights do change the loss
    with torch.no_grad():
        no_grad = chunked_cross_entropy(hidden, weight, targets, softcap=softcap, weights=weights)
    torch.testing.assert_close(no_grad.double(), ref.double(), atol=1e-6, rtol=1e-6)


def test_decoder_loss_weights_use_only_counted_positions():
    """With loss weights the head sees only counted positions; of weights all ones the loss and
    the gradients are those of the plain loss."""
    from tests.model.conftest import tiny_model

    model = tiny_model()
    idx = torch.randint(0, 97, (2, 24))
    targets = idx.roll(-1, dims=1)
    targets[:, :10] = -100
    targets[:, -1] = -100
    plain = model(idx, targets=targets).loss
    plain_grads = torch.autograd.grad(plain, list(model.parameters()))
    ones = torch.ones(targets.shape)
    weighted = model(idx, targets=targets, loss_weights=ones).loss
    weighted_grads = torch.autograd.grad(weighted, list(model.parameters()))
    torch.testing.assert_close(weighted, plain, atol=1e-6, rtol=1e-6)
    for a, b in zip(weighted_grads, plain_grads, strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)
    boosted = ones.clone()
    boosted[:, 20] = 5.0
    assert abs(model(idx, targets=targets, loss_weights=boosted).loss.item() - plain.item()) > 1e-4
