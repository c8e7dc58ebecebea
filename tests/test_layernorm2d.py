"""backbone.LayerNorm2d is timm's `timm.layers.LayerNorm2d` (no copy of our own): a LayerNorm over the channels of
(N, C, H, W) input with eps 1e-6, equal to a hand computation with random weights, contiguous and channels-last."""
import pytest
import timm.layers
import torch

import backbone
from backbone import ConvNeXtV2


def by_hand(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float) -> torch.Tensor:
    """(x - mean_C) / sqrt(var_C + eps) · w + b in float64, statistics over the channel dimension only."""
    x = x.double()
    mean, var = x.mean(1, keepdim=True), x.var(1, unbiased=False, keepdim=True)
    return (x - mean) / (var + eps).sqrt() * weight.double()[:, None, None] + bias.double()[:, None, None]


def test_it_is_timms():
    assert backbone.LayerNorm2d is timm.layers.LayerNorm2d
    norms = [m for m in ConvNeXtV2('atto').modules() if isinstance(m, timm.layers.LayerNorm2d)]
    assert len(norms) == 1 + 3 + 4 and {m.eps for m in norms} == {1e-6}  # stem, 3 downsamplers, 4 output norms


@pytest.mark.parametrize('channels_last', [False, True])
def test_equals_a_hand_computation(channels_last):
    torch.manual_seed(0)
    norm = backbone.LayerNorm2d(40)
    with torch.no_grad():
        norm.weight.normal_()
        norm.bias.normal_()
    x = torch.randn(2, 40, 7, 5) * 3 + 1
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    got = norm(x)
    assert got.dtype == torch.float32 and got.shape == x.shape
    torch.testing.assert_close(got.double(), by_hand(x, norm.weight, norm.bias, 1e-6), rtol=0, atol=2e-6)
    assert sorted(norm.state_dict()) == ['bias', 'weight']  # the official parameter names, loaded as before
