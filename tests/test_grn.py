"""GRN against the paper's formula (numpy, float64) and timm's implementation, with random γ, β; half precision."""
import copy

import numpy as np
import pytest
import torch
from timm.layers.grn import GlobalResponseNorm

from backbone import GRN
from backbone.masked import masked_grn


def paper_grn(x, gamma, beta, eps=1e-6):
    """Paper eq. (§4) on (N, H, W, C): Gx = ‖x‖ over H, W; Nx = Gx / (mean_C Gx + eps); γ(x·Nx) + β + x."""
    gx = np.sqrt((x ** 2).sum(axis=(1, 2), keepdims=True))
    nx = gx / (gx.mean(axis=-1, keepdims=True) + eps)
    return gamma * (x * nx) + beta + x


def random_grn(c, dtype=torch.float64):
    grn = GRN(c).to(dtype)
    torch.nn.init.normal_(grn.gamma)  # zero γ, β would make GRN the identity and any formula pass
    torch.nn.init.normal_(grn.beta)
    return grn


def test_grn_matches_paper_formula():
    torch.manual_seed(0)
    grn, x = random_grn(12), torch.randn(3, 5, 7, 12, dtype=torch.float64)
    expected = paper_grn(x.numpy(), grn.gamma.detach().numpy(), grn.beta.detach().numpy())
    np.testing.assert_allclose(grn(x).detach().numpy(), expected, rtol=1e-12, atol=1e-12)


def test_grn_matches_timm():
    torch.manual_seed(1)
    grn, x = random_grn(16, torch.float32), torch.randn(2, 6, 6, 16)
    ref = GlobalResponseNorm(16, channels_last=True)
    ref.weight.data.copy_(grn.gamma.flatten())
    ref.bias.data.copy_(grn.beta.flatten())
    torch.testing.assert_close(grn(x), ref(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_grn_half_precision_large_activations_stay_finite(dtype):
    torch.manual_seed(2)
    grn = random_grn(8, torch.float32)
    x = torch.randn(2, 56, 56, 8) * 300  # sum of squares ≈ 3136·9e4 ≫ 65504: a half-precision sum overflows
    assert torch.isinf((x.to(dtype) ** 2).sum(dim=(1, 2))).any() or dtype == torch.bfloat16
    with torch.autocast('cpu', dtype=dtype):
        out = grn(x.to(dtype))
    assert out.dtype == dtype and torch.isfinite(out).all()
    torch.testing.assert_close(out.float(), grn(x.to(dtype).float()), rtol=2e-2, atol=2e-2 * 300)


BEYOND_FP16 = (2, 80, 80, 8)  # values ~1e3 over 80×80 sites: L2 norm ≈ 8e4 > 65504, the float16 maximum


@pytest.mark.parametrize('pooling', [None, 'sample', 'batch'])  # None: the dense GRN; else backbone/masked.py
@pytest.mark.parametrize('mode', ['autocast bfloat16', 'autocast float16', 'float16 tensor'])
def test_grn_statistics_in_float32_beyond_float16_range(mode, pooling):
    """Even the norm itself exceeds float16 (not only the sum of squares): GRN must compute Gx in float32, under
    CPU autocast as the block feeds it (the previous Linear's low-precision output) and on a float16 tensor."""
    torch.manual_seed(3)
    grn = random_grn(8, torch.float32)
    dtype = torch.bfloat16 if 'bfloat16' in mode else torch.float16
    x = (torch.randn(*BEYOND_FP16) * 1e3).to(dtype)
    keep = (torch.rand(2, 80, 80, 1) > 0.4).to(dtype)  # visible sites of an FCMAE mask
    assert torch.isinf(x[0].float().norm().to(torch.float16))  # a float16 norm would overflow

    def run(grn, x, keep):
        return grn(x) if pooling is None else masked_grn(grn, x, keep, pooling)
    with torch.autocast('cpu', dtype=dtype, enabled=mode.startswith('autocast')):
        out = run(grn, x, keep)
    expected = run(copy.deepcopy(grn).double(), x.double(), keep.double())  # same rounded inputs, float64 statistics
    assert out.dtype == dtype and torch.isfinite(out).all()
    # measured max relative error 3.9e-3 (bfloat16 output rounding, 2^-8), 4.9e-4 (float16, 2^-11)
    rtol = 8e-3 if dtype == torch.bfloat16 else 1e-3
    torch.testing.assert_close(out.double(), expected, rtol=rtol, atol=1e-2)
