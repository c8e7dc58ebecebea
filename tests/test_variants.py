"""Every ConvNeXt V2 size: parameter counts (paper and timm), feature shapes, frozen stages, drop path, init."""
import pytest
import timm
import torch

from backbone import VARIANTS, ConvNeXtV2

PAPER_PARAMS_M = dict(atto=3.7, femto=5.2, pico=9.1, nano=15.6, tiny=28.6, base=89, large=198, huge=660)


@pytest.mark.parametrize('arch', list(VARIANTS))
def test_parameter_count_matches_paper_and_timm(arch):
    with torch.device('meta'):  # huge has 660M parameters: count them without allocating
        ours = ConvNeXtV2(arch, num_classes=1000)
        ref = timm.create_model(f'convnextv2_{arch}', num_classes=1000)
    n = sum(p.numel() for p in ours.parameters())
    assert n == sum(p.numel() for p in ref.parameters())
    digits = 1 if PAPER_PARAMS_M[arch] < 50 else 0
    assert round(n / 1e6, digits) == PAPER_PARAMS_M[arch]


@pytest.mark.parametrize('arch', ['atto', 'femto'])
def test_feature_shapes_for_every_out_index(arch):
    model = ConvNeXtV2(arch, out_indices=(0, 1, 2, 3)).eval()
    outs = model(torch.randn(2, 3, 64, 96))  # non-square
    dims = VARIANTS[arch]['dims']
    assert [tuple(o.shape) for o in outs] == [(2, dims[i], 16 // 2 ** i, 24 // 2 ** i) for i in range(4)]
    some = ConvNeXtV2(arch, out_indices=(1, -1)).eval()
    assert [o.shape[1] for o in some(torch.randn(1, 3, 64, 64))] == [dims[1], dims[3]]
    assert {n.split('.')[0] for n, _ in some.named_parameters() if n.startswith('norm')} == {'norm1', 'norm3'}


def test_classifier_head_and_head_init_scale():
    torch.manual_seed(0)
    ref = ConvNeXtV2('atto', num_classes=10)
    torch.manual_seed(0)
    small = ConvNeXtV2('atto', num_classes=10, head_init_scale=0.001)
    assert small(torch.randn(3, 3, 64, 64)).shape == (3, 10)
    torch.testing.assert_close(small.head.weight, ref.head.weight * 0.001)
    assert not hasattr(small, 'norm0') and small.new_keys() == ('norm.*', 'head.*')


def test_frozen_stages_stay_frozen_and_in_eval():
    model = ConvNeXtV2('atto', frozen_stages=2, drop_path_rate=0.2)
    model.train()
    frozen = [*model.downsample_layers[:2].parameters(), *model.stages[:2].parameters()]
    assert frozen and not any(p.requires_grad for p in frozen)
    assert all(p.requires_grad for p in model.stages[2].parameters())
    assert not model.stages[1].training and model.stages[2].training
    before = [p.clone() for p in frozen]
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1.)
    sum(o.sum() for o in model(torch.randn(2, 3, 64, 64))).backward()
    opt.step()
    assert all(torch.equal(a, b) for a, b in zip(before, frozen))


def test_drop_path_rates_grow_linearly_and_no_layer_scale():
    model = ConvNeXtV2('atto', drop_path_rate=0.3)
    blocks = [b for stage in model.stages for b in stage]
    rates = [getattr(b.drop_path, 'drop_prob', 0.) for b in blocks]
    assert rates[0] == 0 and rates[-1] == pytest.approx(0.3) and rates[6] == pytest.approx(0.3 * 6 / 11)
    names = [n for n, _ in model.named_parameters()]
    assert not [n for n in names if n.endswith('gamma') and '.grn.' not in n]  # the paper removes LayerScale


def test_init_trunc_normal_zero_bias_zero_grn():
    torch.manual_seed(0)
    model = ConvNeXtV2('tiny')
    w = model.stages[2][0].pwconv1.weight
    assert 0.0195 < w.std().item() < 0.0205 and w.mean().abs().item() < 1e-3
    assert all(b.abs().sum() == 0 for n, b in model.named_parameters() if n.endswith('.bias') and 'norm' not in n)
    assert model.stages[0][0].grn.gamma.shape == (1, 1, 1, 384) and model.stages[0][0].grn.gamma.abs().sum() == 0


def count_calls(modules) -> list:
    """Forward hooks that count calls: a checkpointed block runs its layers again during backward."""
    calls = []
    for m in modules:
        m.register_forward_hook(lambda *_: calls.append(1))
    return calls


@pytest.mark.parametrize('with_cp', [False, True])
def test_activation_checkpointing_recomputes_and_gives_same_gradients(with_cp):
    torch.manual_seed(0)
    plain, model = ConvNeXtV2('atto'), ConvNeXtV2('atto', with_cp=with_cp)
    model.load_state_dict(plain.state_dict())
    calls = count_calls(b.pwconv1 for stage in model.stages for b in stage)
    x = torch.randn(2, 3, 64, 64)
    for m in (plain, model):
        sum(o.square().sum() for o in m(x)).backward()
    assert len(calls) == 12 * (2 if with_cp else 1)  # 12 blocks; each once more in backward when checkpointed
    for (n, a), b in zip(plain.named_parameters(), model.parameters()):
        torch.testing.assert_close(a.grad, b.grad, msg=n)


@pytest.mark.parametrize('path', ['visible', 'dense'])
def test_fcmae_passes_with_cp_to_the_masked_encoder(path):
    from pretrain.fcmae import FCMAE
    torch.manual_seed(0)
    plain = FCMAE('atto', decoder_embed_dim=32, path=path)
    model = FCMAE('atto', decoder_embed_dim=32, path=path, with_cp=True)
    model.load_state_dict(plain.state_dict())
    assert model.encoder.with_cp and not plain.encoder.with_cp
    calls = count_calls(b.pwconv1 for stage in model.encoder.stages for b in stage)
    x, mask = torch.randn(2, 3, 64, 64), plain.random_masking(2, 64, 64)
    for m in (plain, model):
        m(x, mode='loss', mask=mask)['loss'].backward()
    assert len(calls) == 12 * 2  # forward + recomputation in backward
    for (n, a), b in zip(plain.named_parameters(), model.parameters()):
        torch.testing.assert_close(a.grad, b.grad, msg=n)


def test_unknown_arch_is_a_clear_error():
    with pytest.raises(KeyError, match="unknown ConvNeXt V2 arch 'small'"):
        ConvNeXtV2('small')


def test_dense_outputs_are_nchw_for_mmcv_roi_align():
    """mmcv's RoIAlign indexes raw memory as (N, C, H, W): the backbone's channels-last activations must leave it
    contiguous, or every Mask R-CNN RoI feature is read from the wrong places (the detector then cannot learn)."""
    from mmcv.ops import roi_align
    from torchvision.ops import roi_align as tv_roi_align
    feats = ConvNeXtV2('atto').eval()(torch.randn(1, 3, 128, 128))
    rois = torch.tensor([[0., 4, 8, 60, 90], [0., 30, 2, 120, 64]])
    for i, f in enumerate(feats):
        scale = 1 / 2 ** (i + 2)
        expected = tv_roi_align(f.detach().contiguous(), rois, (7, 7), scale, 2, aligned=True)
        torch.testing.assert_close(roi_align(f.detach(), rois, (7, 7), scale, 2, 'avg', True), expected)
