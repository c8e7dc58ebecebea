"""Layer-decay lr scales and weight decay per parameter against hand-computed docs/RECIPES.md values, for every rule."""
import pytest
import torch
import torch.nn as nn
from mmengine.optim import build_optim_wrapper

from backbone import ConvNeXtV2


class Detector(nn.Module):
    """A backbone under `backbone.` plus a neck, as in mmdet/mmseg models."""

    def __init__(self, arch):
        super().__init__()
        with torch.device('meta'):  # names and shapes are all the constructor needs
            self.backbone = ConvNeXtV2(arch)
            self.neck = nn.Conv2d(8, 8, 1)


def scales(model, decay_type, decay_rate, num_layers=None, lr=1e-4, wd=0.05):
    paramwise = dict(decay_type=decay_type, decay_rate=decay_rate)
    if num_layers:
        paramwise['num_layers'] = num_layers
    wrapper = build_optim_wrapper(model, dict(
        type='OptimWrapper', optimizer=dict(type='AdamW', lr=lr, weight_decay=wd),
        constructor='ConvNeXtV2LayerDecayConstructor', paramwise_cfg=paramwise))
    out = {}
    for group in wrapper.optimizer.param_groups:
        for name in group['param_names']:
            out[name] = (group['lr'] / lr, group['weight_decay'])
    assert len(out) == sum(1 for _ in model.parameters())
    return out


def test_layer_wise_base_L12():
    s = scales(Detector('base'), 'layer_wise', 0.95, 12)
    assert s['backbone.downsample_layers.0.0.weight'] == (pytest.approx(0.95 ** 13), 0.05)  # stem 0.513
    assert s['backbone.downsample_layers.0.0.weight'][0] == pytest.approx(0.513, abs=1e-3)
    assert s['backbone.stages.0.2.pwconv1.weight'][0] == pytest.approx(0.95 ** 12)
    assert s['backbone.downsample_layers.1.1.weight'][0] == pytest.approx(0.95 ** 11)
    assert s['backbone.stages.2.26.dwconv.weight'][0] == pytest.approx(0.95 ** 2)  # id 3 + 26 // 3 = 11
    assert s['backbone.stages.2.5.dwconv.weight'][0] == pytest.approx(0.95 ** 9)  # id 3 + 1 = 4
    assert s['backbone.stages.3.0.pwconv2.weight'][0] == pytest.approx(0.95)
    assert s['backbone.downsample_layers.3.1.weight'][0] == pytest.approx(0.95)
    assert s['backbone.norm3.weight'] == (1.0, 0.0) and s['neck.weight'] == (1.0, 0.05)


def test_layer_wise_tiny_defaults_to_6_layers():
    s = scales(Detector('tiny'), 'layer_wise', 0.9)
    assert s['backbone.downsample_layers.0.0.weight'][0] == pytest.approx(0.9 ** 7)
    assert s['backbone.stages.2.8.pwconv1.weight'][0] == pytest.approx(0.9 ** 2)  # id 3 + 8 // 3 = 5
    assert s['backbone.stages.3.2.pwconv1.weight'][0] == pytest.approx(0.9)


def test_stage_wise_L12():
    s = scales(Detector('base'), 'stage_wise', 0.9, 12)
    for i in range(4):
        assert s[f'backbone.downsample_layers.{i}.1.weight'][0] == pytest.approx(0.9 ** 13)  # 0.254
    assert s['backbone.stages.0.0.dwconv.weight'][0] == pytest.approx(0.9 ** 12)
    assert s['backbone.stages.3.2.dwconv.weight'][0] == pytest.approx(0.387, abs=1e-3)  # 0.9 ** 9
    assert s['neck.weight'][0] == 1.0


def test_single_rule_for_classification_atto():
    s = scales(ConvNeXtV2('atto', num_classes=10), 'single', 0.9)  # num_layers = 2 + 2 + 6 + 2 = 12
    assert s['downsample_layers.0.0.weight'][0] == pytest.approx(0.9 ** 12)  # id 1
    assert s['downsample_layers.1.1.weight'][0] == pytest.approx(0.9 ** 10)  # id 2 + 1 = 3
    assert s['stages.2.4.pwconv1.weight'][0] == pytest.approx(0.9 ** 4)  # id 4 + 4 + 1 = 9
    assert s['stages.3.1.pwconv1.weight'][0] == pytest.approx(0.9)  # id 12
    assert s['head.weight'] == (1.0, 0.05) and s['norm.weight'] == (1.0, 0.0)


def test_group_rule_for_classification_base():
    with torch.device('meta'):
        model = ConvNeXtV2('base', num_classes=10)
    s = scales(model, 'group', 0.6)
    assert s['downsample_layers.0.0.weight'][0] == pytest.approx(0.6 ** 13)
    assert s['stages.1.2.dwconv.weight'][0] == pytest.approx(0.6 ** 11)
    assert s['stages.2.26.dwconv.weight'][0] == pytest.approx(0.6 ** 2)
    assert s['downsample_layers.3.1.weight'][0] == pytest.approx(0.6)
    assert s['head.weight'][0] == 1.0


def test_no_weight_decay_for_grn_bias_and_1d():
    s = scales(Detector('atto'), 'layer_wise', 0.9)
    block = 'backbone.stages.1.0.'
    assert s[block + 'grn.gamma'][1] == 0 and s[block + 'grn.beta'][1] == 0  # (1,1,1,C): not caught by ndim
    assert s[block + 'pwconv1.bias'][1] == 0 and s[block + 'norm.weight'][1] == 0
    assert s[block + 'pwconv1.weight'][1] == 0.05 and s[block + 'dwconv.weight'][1] == 0.05


def test_bad_rule_and_model_without_convnext_are_clear_errors():
    with pytest.raises(ValueError, match="decay_type='blockwise'"):
        scales(Detector('atto'), 'blockwise', 0.9)
    with pytest.raises(TypeError, match='needs a model containing a ConvNeXtV2'):
        scales(nn.Linear(2, 2), 'layer_wise', 0.9)
