"""One set of random weights, written in every checkpoint format the loader reads, must give timm's numbers (HF
transformers and mmpretrain, written by those libraries: tests/test_checkpoint_libraries.py; bad files and misfitting
checkpoints: tests/test_checkpoint_errors.py, tests/test_checkpoint_fit.py)."""
import argparse
import re

import pytest
import timm
import torch
from safetensors.torch import save_file

from backbone.checkpoint import CheckpointError, load_pretrained
from backbone.convnextv2 import VARIANTS, ConvNeXtV2
from tools.convert_checkpoint import main as convert_tool


def random_timm(arch: str, seed: int = 0):
    """timm convnextv2 with every parameter random, GRN γ/β included (zero GRN would make it the identity)."""
    torch.manual_seed(seed)
    model = timm.create_model(f'convnextv2_{arch}', pretrained=False).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(torch.randn_like(p) * (0.5 if 'grn' in name else 0.02))
            if 'norm' in name and name.endswith('weight'):
                p.add_(1)
    return model


def to_official(t: dict, arch: str) -> dict:
    """timm -> official dense names, written out key by key (independent of the loader's rename tables)."""
    depths, o = VARIANTS[arch]['depths'], {}
    for p in ('weight', 'bias'):
        o[f'downsample_layers.0.0.{p}'], o[f'downsample_layers.0.1.{p}'] = t[f'stem.0.{p}'], t[f'stem.1.{p}']
        o[f'norm.{p}'], o[f'head.{p}'] = t[f'head.norm.{p}'], t[f'head.fc.{p}']
        for s in range(4):
            for i in (0, 1):
                if s:
                    o[f'downsample_layers.{s}.{i}.{p}'] = t[f'stages.{s}.downsample.{i}.{p}']
            for j in range(depths[s]):
                b, q = f'stages.{s}.{j}.', f'stages.{s}.blocks.{j}.'
                o[b + f'dwconv.{p}'], o[b + f'norm.{p}'] = t[q + f'conv_dw.{p}'], t[q + f'norm.{p}']
                o[b + f'pwconv1.{p}'] = t[q + f'mlp.fc1.{p}'].reshape(t[q + f'mlp.fc1.{p}'].shape[:2])
                o[b + f'pwconv2.{p}'] = t[q + f'mlp.fc2.{p}'].reshape(t[q + f'mlp.fc2.{p}'].shape[:2])
                o[b + {'weight': 'grn.gamma', 'bias': 'grn.beta'}[p]] = t[q + f'mlp.grn.{p}'].reshape(1, 1, 1, -1)
    return o


def to_minkowski(o: dict) -> dict:
    """Official FCMAE training layout (encoder.*, MinkowskiEngine kernels K[h + ks*w] = W[..., h, w], as the official
    remap_checkpoint_keys)."""
    me = {}
    for k, v in o.items():
        parts = k.split('.')
        if parts[0] in ('norm', 'head'):
            continue
        sparse_downsample = parts[0] == 'downsample_layers' and parts[1] != '0'
        if k.endswith('dwconv.weight') or (sparse_downsample and parts[2:] == ['1', 'weight']):
            ks = v.shape[-1]  # (C, 1, ks, ks) depthwise -> (ks*ks, C); (C_out, C_in, ks, ks) -> (ks*ks, C_in, C_out)
            kernel = [v[:, :, k_ % ks, k_ // ks].t() for k_ in range(ks * ks)]  # h = k % ks, w = k // ks
            me['encoder.' + k[:-len('weight')] + 'kernel'] = torch.stack(kernel).squeeze(1)
            continue
        if sparse_downsample:
            k = k.replace(f'{parts[1]}.0.', f'{parts[1]}.0.ln.')  # sparse LayerNorm
            v = v.reshape(1, -1) if k.endswith('1.bias') else v
        elif parts[0] == 'stages':
            k = re.sub(r'\.norm\.', '.norm.ln.', re.sub(r'\.(pwconv\d)\.', r'.\1.linear.', k))
            v = v.reshape(1, -1) if ('grn' in k or k.endswith('dwconv.bias')) else v
        me['encoder.' + k] = v
    me.update({'mask_token': torch.zeros(1, 8, 1, 1), 'proj.weight': torch.zeros(8, 320, 1, 1),
               'decoder.0.dwconv.weight': torch.zeros(8, 1, 7, 7), 'pred.weight': torch.zeros(3072, 8, 1, 1)})
    return me


def stage_outputs(model, x):
    """Our stage outputs before the out norms (timm's forward_intermediates(norm=False) are the same points)."""
    outs, model = [], model.eval()
    with torch.no_grad():
        for i in range(4):
            outs.append(x := model.forward_stage(i, x))
    return outs


@pytest.fixture(scope='module')
def atto():
    ref, x = random_timm('atto'), torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        feats, logits = ref.forward_intermediates(x, intermediates_only=True), ref(x)
    return dict(x=x, feats=feats, logits=logits, official=to_official(ref.state_dict(), 'atto'))


def assert_same_as_timm(model, data):
    for ours, ref in zip(stage_outputs(model, data['x']), data['feats']):
        torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize('arch', ['atto', 'tiny'])  # conv-MLP (4-D fc1) and linear-MLP timm layouts
def test_timm_state_dict(arch, tmp_path):
    ref, x = random_timm(arch), torch.randn(1, 3, 64, 64)
    torch.save(ref.state_dict(), tmp_path / 'timm.pth')
    model, classifier = ConvNeXtV2(arch, out_indices=(0, 1, 2, 3)), ConvNeXtV2(arch, num_classes=1000)
    report = load_pretrained(model, tmp_path / 'timm.pth')
    assert report['format'] == 'timm' and sorted(report['dropped']) == ['head.bias', 'head.weight', 'norm.bias',
                                                                        'norm.weight']
    assert sorted(report['absent']) == sorted(f'norm{i}.{p}' for i in range(4) for p in ('bias', 'weight'))
    assert load_pretrained(classifier, tmp_path / 'timm.pth')['absent'] == []
    with torch.no_grad():
        assert_same_as_timm(model, dict(x=x, feats=ref.forward_intermediates(x, intermediates_only=True)))
        torch.testing.assert_close(classifier.eval()(x), ref(x), atol=1e-5, rtol=1e-5)


def test_timm_safetensors(atto, tmp_path):
    """timm's own weight files are safetensors: the same state dict through safetensors.torch.save_file."""
    ref = random_timm('atto')
    save_file(ref.state_dict(), tmp_path / 'model.safetensors')
    model = ConvNeXtV2('atto', out_indices=(0, 1, 2, 3))
    assert load_pretrained(model, tmp_path / 'model.safetensors')['format'] == 'timm'
    assert_same_as_timm(model, atto)
    (tmp_path / 'cut.safetensors').write_bytes((tmp_path / 'model.safetensors').read_bytes()[:1000])
    with pytest.raises(CheckpointError, match=r'cut\.safetensors: cannot read \(SafetensorError: .*is it truncated'):
        load_pretrained(model, tmp_path / 'cut.safetensors')


def _formats(o: dict) -> dict:
    """Each public / own layout of the same weights, as the file would hold it."""
    noisy = {k: v + 1 for k, v in o.items()}
    backbone = {k: v for k, v in o.items() if not k.startswith(('norm.', 'head.'))}
    return {
        'official': ({'model': o, 'args': argparse.Namespace(model='convnextv2_atto', lr=8e-4)}, {}),
        'official-ema': ({'model': noisy, 'model_ema': o, 'epoch': 99}, dict(key='ema')),
        'official-fcmae': ({'model': to_minkowski(o), 'epoch': 799}, {}),
        'ours-backbone': ({'meta': {'iter': 10}, 'state_dict': {'backbone.' + k: v for k, v in o.items()}}, {}),
        'ours-fcmae': ({'state_dict': {**{'encoder.' + k: v for k, v in backbone.items()}, 'pred.bias': o['norm.bias'],
                                       'decoder.0.norm.weight': o['norm.weight'], 'mask_token': o['norm.weight']}}, {}),
    }


@pytest.mark.parametrize('fmt', ['official', 'official-ema', 'official-fcmae', 'ours-backbone', 'ours-fcmae'])
def test_every_format_gives_timm_outputs(fmt, atto, tmp_path):
    ckpt, kwargs = _formats(atto['official'])[fmt]
    torch.save(ckpt, tmp_path / 'ckpt.pth')
    model = ConvNeXtV2('atto', out_indices=(0, 1, 2, 3))
    report = load_pretrained(model, tmp_path / 'ckpt.pth', **kwargs)
    assert report['format'] == fmt.replace('-ema', '').replace('-backbone', '').replace('ours-fcmae', 'ours')
    assert_same_as_timm(model, atto)
    if 'fcmae' not in fmt:  # classifiers: logits too
        classifier = ConvNeXtV2('atto', num_classes=1000)
        load_pretrained(classifier, tmp_path / 'ckpt.pth', **kwargs)
        with torch.no_grad():
            torch.testing.assert_close(classifier.eval()(atto['x']), atto['logits'], atol=1e-5, rtol=1e-5)


def test_official_auto_prefers_model_over_ema(atto, tmp_path):
    ckpt, _ = _formats(atto['official'])['official-ema']
    model = ConvNeXtV2('atto')
    load_pretrained(model, ckpt)
    assert torch.equal(model.stages[0][0].dwconv.weight, atto['official']['stages.0.0.dwconv.weight'] + 1)


def test_minkowski_kernel_offset_order(atto):
    """A one-hot ME kernel at k = h + 7*w (h=1, w=5) lands at dense weight [c, 0, 1, 5], and 2x2 at k = h + 2*w."""
    me = to_minkowski(atto['official'])
    me['encoder.stages.0.0.dwconv.kernel'] = torch.zeros(49, 40)
    me['encoder.stages.0.0.dwconv.kernel'][1 + 7 * 5, 3] = 1
    me['encoder.downsample_layers.1.1.kernel'] = torch.zeros(4, 40, 80)
    me['encoder.downsample_layers.1.1.kernel'][0 + 2 * 1, 7, 9] = 1
    model = ConvNeXtV2('atto')
    load_pretrained(model, {'model': me})
    assert torch.nonzero(model.stages[0][0].dwconv.weight).tolist() == [[3, 0, 1, 5]]
    assert torch.nonzero(model.downsample_layers[1][1].weight).tolist() == [[9, 7, 0, 1]]


def test_convert_tool(atto, tmp_path):
    torch.save({'model': to_minkowski(atto['official'])}, tmp_path / 'fcmae.pth')
    out = convert_tool([str(tmp_path / 'fcmae.pth'), str(tmp_path / 'cnx2_a.pth')])
    saved = torch.load(tmp_path / 'cnx2_a.pth', weights_only=True)
    assert saved['meta']['arch'] == 'atto' and saved['meta']['source_format'] == 'official-fcmae'
    assert sorted(saved['state_dict']) == sorted(out['state_dict']) and len(saved['state_dict']) == 16 + 12 * 10
    model = ConvNeXtV2('atto', out_indices=(0, 1, 2, 3))
    assert load_pretrained(model, tmp_path / 'cnx2_a.pth')['format'] == 'ours'
    assert_same_as_timm(model, atto)
    assert len(list(tmp_path.iterdir())) == 2  # no temporary file left behind
