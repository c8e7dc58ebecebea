"""A checkpoint that does not fit the model raises CheckpointError naming the keys, shapes or block counts, one message
per kind of misfit; strict=False loads what fits and reports the rest."""
import re

import pytest
import timm
import torch

from backbone.checkpoint import CheckpointError, load_pretrained
from backbone.convnextv2 import ConvNeXtV2


@pytest.fixture(scope='module')
def official():
    """An atto classifier's state dict in the official dense names (ours are the same), random GRN included."""
    torch.manual_seed(0)
    model = ConvNeXtV2('atto', num_classes=1000)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return model.state_dict()


def test_missing_keys(official):
    o = {k: v for k, v in official.items() if k != 'stages.3.1.grn.gamma'}
    with pytest.raises(CheckpointError, match=r'1 model keys missing from the official checkpoint: '
                                              r'stages\.3\.1\.grn\.gamma$'):
        load_pretrained(ConvNeXtV2('atto'), {'model': o})


def test_other_variant_shape_mismatch(tmp_path):
    torch.save(timm.create_model('convnextv2_femto').state_dict(), tmp_path / 'femto.pth')
    with pytest.raises(CheckpointError, match=r'femto\.pth \(timm\) does not fit ConvNeXtV2\(depths=\(2, 2, 6, 2\), '
                                              r'dims=\(40, 80, 160, 320\)\): \d+ shape mismatches \(model vs '
                                              r'checkpoint\): downsample_layers\.0\.0\.weight \(40, 3, 4, 4\) vs '
                                              r'\(48, 3, 4, 4\)'):
        load_pretrained(ConvNeXtV2('atto'), tmp_path / 'femto.pth')


def test_depth_mismatch(official, tmp_path):
    torch.save(timm.create_model('convnextv2_nano').state_dict(), tmp_path / 'nano.pth')  # 8 blocks in stage 2
    with pytest.raises(CheckpointError, match=r'nano\.pth: timm checkpoint has 8 blocks in stages\.2 \(blocks per '
                                              r'stage \(2, 2, 8, 2\)\); the model expects \(2, 2, 6, 2\): a checkpoint '
                                              r'of another variant\?'):
        load_pretrained(ConvNeXtV2('atto'), tmp_path / 'nano.pth')
    o = {k: v for k, v in official.items() if not k.startswith('stages.3')}
    with pytest.raises(CheckpointError, match=r'official checkpoint has 0 blocks in stages\.3 \(blocks per stage '
                                              r'\(2, 2, 6, 0\)\)'):
        load_pretrained(ConvNeXtV2('atto'), {'model': o})


def test_unexpected_leftovers(official):
    sd = {'backbone.' + k: v for k, v in official.items()}
    sd['projector.weight'] = torch.zeros(4)  # not a part of our detectors / segmentors, nor FCMAE's decoder
    with pytest.raises(CheckpointError, match=r'1 unexpected checkpoint keys: projector\.weight$'):
        load_pretrained(ConvNeXtV2('atto'), {'state_dict': sd})
    report = load_pretrained(ConvNeXtV2('atto'), {'state_dict': sd}, may_leave=('projector.*',))
    assert report['dropped'][-1] == 'projector.weight' and not report['errors']


def test_several_backbones(official):
    sd = {f'{prefix}backbone.{k}': v for prefix in ('', 'teacher.') for k, v in official.items()}
    with pytest.raises(CheckpointError, match=r"state dict: official checkpoint holds several backbones, under "
                                              r"prefixes \['backbone\.', 'teacher\.backbone\.'\]"):
        load_pretrained(ConvNeXtV2('atto'), {'state_dict': sd})


@pytest.mark.parametrize('key, shape', [('stages.0.0.grn.gamma', (4, 40)), ('stages.1.0.pwconv2.bias', (2, 40))])
def test_vector_with_two_dimensions(official, key, shape):
    """GRN γ/β and biases are reshaped by element count only when a single dimension is not 1."""
    o = dict(official, **{key: official[key].reshape(shape)})
    with pytest.raises(CheckpointError, match=re.escape(f'{key}: shape {shape} is not a vector; expected one '
                                                       'non-unit dimension')):
        load_pretrained(ConvNeXtV2('atto'), {'model': o})
    o[key] = official[key].reshape(1, -1, 1)  # one non-unit dimension: accepted
    load_pretrained(ConvNeXtV2('atto', num_classes=1000), {'model': o})


@pytest.mark.parametrize('shape', [(48, 40), (49, 40, 1, 1), (49,)])
def test_bad_minkowski_kernel(official, shape):
    me = {'encoder.' + k: v for k, v in official.items() if not k.startswith(('norm.', 'head.'))}
    del me['encoder.stages.0.0.dwconv.weight']
    me['encoder.stages.0.0.dwconv.kernel'] = torch.zeros(shape)
    with pytest.raises(CheckpointError, match=rf'stages\.0\.0\.dwconv\.kernel: MinkowskiEngine kernel of shape '
                                              rf'{re.escape(str(shape))}; expected \(ks\*ks, C\) or '
                                              r'\(ks\*ks, C_in, C_out\)'):
        load_pretrained(ConvNeXtV2('atto'), {'model': me})


def test_strict_false_loads_what_fits_and_reports(official, caplog):
    o = {k: v for k, v in official.items() if k != 'stages.2.5.dwconv.bias'}
    o['stages.0.0.pwconv1.weight'] = torch.zeros(7, 7)  # another shape
    o['extra.weight'] = torch.ones(3)
    model = ConvNeXtV2('atto', num_classes=1000)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    report = load_pretrained(model, {'model': o}, strict=False)
    assert report['absent'] == ['stages.0.0.pwconv1.weight', 'stages.2.5.dwconv.bias']
    assert report['dropped'] == ['extra.weight'] and report['loaded'] == len(official) - 2
    assert [e.split(':')[0] for e in report['errors']] == [
        '1 model keys missing from the official checkpoint', '1 shape mismatches (model vs checkpoint)',
        '1 unexpected checkpoint keys']
    after = model.state_dict()
    for k in official:  # the misfits keep their fresh values, everything else is the checkpoint's
        assert torch.equal(after[k], before[k] if k in report['absent'] else official[k]), k
    deeper = dict(official, **{k.replace('stages.2.5.', 'stages.2.6.'): v for k, v in official.items()
                               if k.startswith('stages.2.5.')})  # 7 blocks in stage 2: no depth check when not strict
    with pytest.raises(CheckpointError, match='has 7 blocks in stages.2'):
        load_pretrained(ConvNeXtV2('atto', num_classes=1000), {'model': deeper})
    report = load_pretrained(ConvNeXtV2('atto', num_classes=1000), {'model': deeper}, strict=False)
    extra = [k for k in deeper if k.startswith('stages.2.6.')]
    assert report['loaded'] == len(official) and report['errors'] == [
        f'{len(extra)} unexpected checkpoint keys: ' + ', '.join(extra)]
