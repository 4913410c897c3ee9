"""BitNet b1.58: ternary weights, int8 activations, straight-through gradients."""

import torch

from smelt.model.bitnet import BitLinear, quantize_activation_int8, quantize_weight_ternary


def test_weights_are_ternary_times_absmean():
    torch.manual_seed(0)
    w = torch.randn(32, 16)
    q = quantize_weight_ternary(w)
    scale = w.abs().mean()
    assert set((q / scale).round().unique().tolist()) <= {-1.0, 0.0, 1.0}
    torch.testing.assert_close(q.abs().max(), scale)


def test_activations_use_at_most_256_levels_per_token():
    x = torch.randn(3, 500)
    q = quantize_activation_int8(x)
    for row, orig in zip(q, x, strict=True):
        levels = (row * 127 / orig.abs().max()).round()
        assert levels.unique().numel() <= 256 and levels.abs().max() <= 128
    assert (q - x).abs().max() <= x.abs().max() / 127


def test_forward_uses_quantized_values_and_backward_is_straight_through():
    torch.manual_seed(1)
    layer = BitLinear(16, 8)
    x = torch.randn(4, 16, requires_grad=True)
    y = layer(x)
    expected = quantize_activation_int8(x) @ quantize_weight_ternary(layer.weight).T
    torch.testing.assert_close(y, expected.detach())
    y.sum().backward()
    # STE: gradients are those of the quantized linear map w.r.t. unquantized inputs/weights
    w_q = quantize_weight_ternary(layer.weight).detach()
    torch.testing.assert_close(x.grad, torch.ones(4, 8) @ w_q)
    torch.testing.assert_close(
        layer.weight.grad, torch.ones(8, 4) @ quantize_activation_int8(x).detach()
    )
    assert layer.weight.grad.abs().sum() > 0
