"""The GRN ablations (paper Table 2, appendix Table 16) against hand computations on a 1×2×2×3 tensor, the SE/CBAM
gates against timm's channels-first modules and the paper's parameter counts, each option selected from the
fine-tuning config, and the strict loader's GRN / no-GRN boundary option (Table 2f)."""
import math
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import MODELS
from timm.layers.cbam import CbamModule
from timm.layers.squeeze_excite import SEModule

import pretrain.classifier  # noqa: F401  (registers ImageClassifier)
from backbone.checkpoint import CheckpointError, load_pretrained
from backbone.convnextv2 import ConvNeXtV2, param_count
from backbone.grn import BN, CBAM, GRN, LN, LRN, SE, build_grn

ROOT = Path(__file__).resolve().parents[1]
ARCH = dict(depths=(1, 1, 2, 1), dims=(8, 16, 32, 64))
# sites (0,0), (0,1), (1,0), (1,1); channel 0 is 1 everywhere, channel 1 holds 0, 3, 0, 4, channel 2 ±1
X = torch.tensor([[[[1., 0, -1], [1, 3, 1]], [[1, 0, -1], [1, 4, 1]]]], dtype=torch.float64)
GAMMA, BETA = torch.tensor([1., 2, 3], dtype=torch.float64), torch.tensor([.5, 0, -1], dtype=torch.float64)
S2 = math.sqrt(2)
# per channel over the 4 sites: L2 (2, 5, 2), L1 (4, 7, 4), mean (1, 7/4, 0); each N(·) below written out by hand
HAND = {  # options -> the factor x is multiplied by under γ
    (): [2 / 3, 5 / 3, 2 / 3],  # L2, divisive: g / mean(g) = (2, 5, 2) / 3
    (('aggregation', 'l1'),): [4 / 5, 7 / 5, 4 / 5],  # (4, 7, 4) / 5
    (('aggregation', 'avg'),): [12 / 11, 21 / 11, 0],  # (1, 7/4, 0) / (11/12)
    (('normalization', 'standardize'),): [-1 / S2, S2, -1 / S2],  # ((2, 5, 2) − 3) / √2 (population σ)
    (('normalization', 'inverse_sum'),): [1 / 3] * 3,  # 1 / mean(2, 5, 2)
    (('form', 'x_gx'),): [2, 5, 2],  # the L2 norms themselves
    (('form', 'affine'),): [1, 1, 1],  # no calibration: x + γx + β
}
# 'x_nx': divisive normalization of |x| across channels at each site, no spatial aggregation
X_NX = torch.tensor([[[[1.5, 0, 1.5], [.6, 1.8, .6]], [[1.5, 0, 1.5], [.5, 2, .5]]]], dtype=torch.float64)


def grn_with(**options) -> GRN:
    grn = GRN(3, eps=0., **options).double()
    grn.gamma.data.copy_(GAMMA.view(1, 1, 1, 3))
    grn.beta.data.copy_(BETA.view(1, 1, 1, 3))
    return grn


@pytest.mark.parametrize('options', list(HAND), ids=lambda o: ','.join(f'{k}={v}' for k, v in o) or 'paper')
def test_grn_variants_by_hand(options):
    nx = torch.tensor(HAND[options], dtype=torch.float64)
    expected = X + GAMMA * X * nx + BETA
    torch.testing.assert_close(grn_with(**dict(options))(X), expected, rtol=1e-12, atol=1e-12)


def test_grn_x_nx_and_no_skip_by_hand():
    torch.testing.assert_close(grn_with(form='x_nx')(X), X + GAMMA * X * X_NX + BETA, rtol=1e-12, atol=1e-12)
    no_skip = GAMMA * X * torch.tensor([2 / 3, 5 / 3, 2 / 3], dtype=torch.float64) + BETA  # Table 2c: no "+ x"
    torch.testing.assert_close(grn_with(residual=False)(X), no_skip, rtol=1e-12, atol=1e-12)


def test_grn_masked_statistics_by_hand():
    """keep: the second row masked; L2 over the visible first row only: (√2, 3, √2), divisive by (3 + 2√2)/3."""
    keep = torch.tensor([1., 0]).view(1, 2, 1, 1).double()
    g = torch.tensor([S2, 3, S2], dtype=torch.float64)
    torch.testing.assert_close(grn_with()(X, keep), X + GAMMA * X * g / g.mean() + BETA, rtol=1e-12, atol=1e-12)
    avg = torch.tensor([1, 1.5, 0], dtype=torch.float64)  # mean of the two visible sites (G alone: x_gx form)
    torch.testing.assert_close(grn_with(aggregation='avg', form='x_gx')(X, keep), X + GAMMA * X * avg + BETA,
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize('grn', [dict(type='GRN'), dict(type='GRN', aggregation='avg'), dict(type='BN'),
                                 dict(type='SE'), dict(type='CBAM')], ids=lambda g: '-'.join(map(str, g.values())))
@pytest.mark.parametrize('dims', [(1, 2), (0, 1, 2)], ids=['sample', 'batch'])
def test_masked_sites_change_no_visible_output(grn, dims):
    """Under a mask, what a module puts at visible sites depends on visible sites only: arbitrary values at masked
    sites (pooling, max, BN statistics and CBAM's 7×7 conv all see them in the dense tensor) change nothing."""
    torch.manual_seed(0)
    module = build_grn(grn, 64).double().train()  # 64: CBAM/SE reduce to 4 hidden units
    for p in module.parameters():
        p.data.normal_(0, .5)
    x = torch.randn(2, 6, 7, 64, dtype=torch.float64)
    keep = (torch.rand(2, 6, 7, 1) > .5).double()
    other = x + 10 * torch.randn_like(x) * (1 - keep)
    visible = module(x, keep, dims) * keep
    assert visible.abs().max() > .1 and torch.equal(visible, module(other, keep, dims) * keep)
    assert not torch.allclose(module(x) * keep, module(other) * keep)  # without the mask they do


def test_default_grn_is_the_paper_grn_with_its_state_dict():
    assert build_grn(None, 3).extra_repr() == build_grn(dict(type='GRN'), 3).extra_repr() == \
        '3, aggregation=l2, normalization=divisive, residual=True, form=full'
    assert list(ConvNeXtV2(ARCH, grn=dict(type='GRN')).state_dict()) == list(ConvNeXtV2(ARCH).state_dict())


def test_lrn_ln_bn_by_hand():
    x = X.clone()
    x[0, 0, 1] *= 100  # (100, 300, 100): AlexNet's α·Σa² = 1e-4 · 110000 = 11 matters
    lrn = build_grn(dict(type='LRN'), 3)
    assert isinstance(lrn, LRN) and (lrn.size, lrn.alpha, lrn.beta, lrn.k) == (5, 5e-4, .75, 2.)
    # AlexNet §3.3: b = a / (k + α Σ_{5 neighbouring channels} a²)^β; all 3 channels are within 2 of each other
    expected = x / (2 + 1e-4 * (x ** 2).sum(-1, keepdim=True)) ** .75
    torch.testing.assert_close(lrn(x), expected, rtol=1e-12, atol=1e-12)
    assert abs(lrn(x)[0, 0, 1, 1].item() - 300 / 13 ** .75) < 1e-9
    ln = build_grn(dict(type='LN'), 3).double()
    assert isinstance(ln, LN) and ln.eps == 1e-6
    torch.testing.assert_close(ln(X)[0, 0, 1], torch.tensor([-1 / S2, S2, -1 / S2], dtype=torch.float64),
                               rtol=1e-5, atol=1e-6)  # (1, 3, 1): mean 5/3, σ 2√2/3
    bn = build_grn(dict(type='BN'), 3).double().train()
    assert isinstance(bn, BN)
    c1 = (torch.tensor([0., 3, 0, 4], dtype=torch.float64) - 1.75) / math.sqrt(3.1875 + 1e-5)  # mean 7/4, var 51/16
    torch.testing.assert_close(bn(X)[..., 1].flatten(), c1, rtol=1e-12, atol=1e-12)
    assert torch.allclose(bn.bn.running_mean, torch.tensor([.1, .175, 0], dtype=torch.float64))  # momentum .1
    keep = torch.tensor([1., 0]).view(1, 2, 1, 1).double()  # first row visible: channel 1 holds 0, 3
    torch.testing.assert_close(bn(X, keep)[0, 0, :, 1], torch.tensor([-1., 1], dtype=torch.float64), atol=1e-5,
                               rtol=0)
    assert (bn(X, keep)[0, 1] == 0).all()  # masked sites: zero


@pytest.mark.parametrize('kind, reference, params', [
    ('SE', SEModule, 64 * 8 + 8 + 8 * 64 + 64),  # rd = 64/16 = 4, rounded up to timm's divisor 8; with biases
    ('CBAM', CbamModule, 64 * 4 + 4 + 4 * 64 + 64 + 2 * 49 + 2),  # rd 4, MLP biases, 7×7 conv 2→1 (no bias), BN
])
def test_gates_equal_timm_channels_first(kind, reference, params):
    torch.manual_seed(0)
    gate = build_grn(dict(type=kind), 64).double().train()
    assert sum(p.numel() for p in gate.parameters()) == params
    ref = reference(64, **(dict(mlp_bias=True) if kind == 'CBAM' else {})).double().train()
    ref.load_state_dict(gate.state_dict())
    x = torch.randn(2, 5, 6, 64, dtype=torch.float64)
    out = gate(x)
    assert out.shape == x.shape
    torch.testing.assert_close(out, ref(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1), rtol=1e-12, atol=1e-12)


def test_se_cbam_parameter_counts_beside_the_paper():
    """Table 2e: GRN 89M, SE and CBAM 109M at ConvNeXt V2-B; reduction 16 on the 4C-wide features gives 109.6M."""
    counts = {kind: param_count('base', dict(type=kind)) / 1e6 for kind in ('GRN', 'SE', 'CBAM', 'none')}
    print(f"ConvNeXt V2-B parameters (paper): GRN {counts['GRN']:.1f}M (89M), SE {counts['SE']:.1f}M (109M), "
          f"CBAM {counts['CBAM']:.1f}M (109M), none {counts['none']:.1f}M")
    assert abs(counts['GRN'] - 89) < 1 and abs(counts['SE'] - 109) < 1 and abs(counts['CBAM'] - 109) < 1
    assert abs(param_count('base', dict(type='SE', rd_ratio=1 / 8)) / 1e6 - 109) > 20  # r=8 is far off: r=16


@pytest.mark.parametrize('grn, module', [(dict(type='none'), torch.nn.Identity), (dict(type='LRN'), LRN),
                                         (dict(type='BN'), BN), (dict(type='LN'), LN), (dict(type='SE'), SE),
                                         (dict(type='CBAM'), CBAM),
                                         (dict(type='GRN', aggregation='l1', residual=False), GRN)])
def test_each_option_selected_from_the_finetune_config(grn, module):
    cfg = Config.fromfile(ROOT / 'pretrain/configs/finetune_cnx2_atto.py')
    cfg.merge_from_dict({'model.backbone.grn': grn})  # as --cfg-options model.backbone.grn=... does
    cfg.model.backbone.arch = ARCH  # a small size, for speed
    model = MODELS.build(cfg.model)
    blocks = [b for stage in model.backbone.stages for b in stage]
    assert len(blocks) == 5 and all(type(b.grn) is module for b in blocks)
    if module is GRN:
        assert blocks[0].grn.aggregation == 'l1' and blocks[0].grn.residual is False
    assert model(torch.randn(2, 3, 64, 64)).shape == (2, 1000)


def test_bad_options_raise_clear_errors():
    with pytest.raises(ValueError, match=r"grn type='GN': expected one of \('GRN', 'none'"):
        build_grn(dict(type='GN'), 8)
    with pytest.raises(ValueError, match=r"aggregation='max': expected one of \('l2', 'l1', 'avg'\)"):
        build_grn(dict(type='GRN', aggregation='max'), 8)
    with pytest.raises(ValueError, match="normalization='divisive' with form='affine': that form has no"):
        build_grn(dict(type='GRN', normalization='divisive', form='affine'), 8)
    with pytest.raises(ValueError, match='grn type=SE: .*reduction'):
        build_grn(dict(type='SE', reduction=4), 8)
    with pytest.raises(ValueError, match="block='v1' has no GRN"):
        ConvNeXtV2(ARCH, block='v1', grn=dict(type='SE'))


# ----------------------------------------------------------- loading across a GRN / no-GRN boundary (Table 2f)
def save(model, path) -> Path:
    torch.save(dict(state_dict={f'backbone.{k}': v for k, v in model.state_dict().items()}, meta={}), path)
    return path


def randomized(model):
    g = torch.Generator().manual_seed(0)
    for p in model.parameters():
        p.data = torch.randn(p.shape, generator=g)
    return model


def test_grn_added_at_finetuning(tmp_path):
    path = save(randomized(ConvNeXtV2(ARCH, num_classes=10, grn=dict(type='none'))), tmp_path / 'nogrn.pth')
    with pytest.raises(CheckpointError, match=r"no GRN tensors but the model has 10 \(stages\.0\.0\.grn\.gamma.*"
                                              r"grn_mismatch='add'"):
        ConvNeXtV2(ARCH, num_classes=10, init_cfg=dict(type='Pretrained', checkpoint=str(path))).init_weights()
    model = randomized(ConvNeXtV2(ARCH, num_classes=10, init_cfg=dict(type='Pretrained', checkpoint=str(path),
                                                                        grn_mismatch='add')))
    model.init_weights()  # the config route: init_cfg's grn_mismatch reaches the loader
    report = load_pretrained(model, path, grn_mismatch='add')
    grn = [k for k in model.state_dict() if '.grn.' in k]
    assert report['grn_added'] == grn and len(grn) == 10 and report['grn_dropped'] == [] and not report['errors']
    assert all(model.state_dict()[k].abs().sum() == 0 for k in grn)  # fresh: γ = β = 0, the identity
    src = torch.load(path)['state_dict']
    assert all(torch.equal(v, src[f'backbone.{k}']) for k, v in model.state_dict().items() if k not in grn)
    with pytest.raises(CheckpointError, match="grn_mismatch='add' adds fresh GRN.*holds 10 GRN tensors"):
        load_pretrained(model, save(model, tmp_path / 'grn.pth'), grn_mismatch='add')


def test_grn_dropped_at_finetuning(tmp_path):
    path = save(randomized(ConvNeXtV2(ARCH, num_classes=10)), tmp_path / 'grn.pth')
    model = ConvNeXtV2(ARCH, num_classes=10, grn=dict(type='none'))
    with pytest.raises(CheckpointError, match=r"has 10 GRN tensors \(stages\.0\.0\.grn\.gamma.*grn_mismatch='drop'"):
        load_pretrained(model, path)
    report = load_pretrained(model, path, grn_mismatch='drop')
    assert report['grn_dropped'] == [k for k in ConvNeXtV2(ARCH).state_dict() if '.grn.' in k]
    assert report['grn_added'] == [] and not report['errors'] and report['loaded'] == len(model.state_dict())
    with pytest.raises(CheckpointError, match="grn_mismatch='drop' drops.*the model has 10 GRN tensors"):
        load_pretrained(ConvNeXtV2(ARCH, num_classes=10), path, grn_mismatch='drop')
    with pytest.raises(ValueError, match=r"grn_mismatch='ignore': expected one of \('error', 'add', 'drop'\)"):
        load_pretrained(model, path, grn_mismatch='ignore')
