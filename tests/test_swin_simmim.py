"""backbone/swin_simmim.py through the Swin config: a generated raw SimMIM checkpoint (original Swin naming,
`encoder.` prefix, window 6, decoder, yacs config) and a converted one load strictly; wrong files fail clearly."""
import os.path as osp
import sys
import types

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

from backbone.checkpoint import CheckpointError

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
TINY = dict(embed_dims=32, depths=(2, 2, 2, 2), num_heads=(1, 2, 4, 8))  # Swin-B's layout, small enough for CPU
ORDER = [0, 2, 1, 3]  # mmdet's unfold order vs the original Swin's x0..x3 concat in patch merging (self-inverse)


pytestmark = pytest.mark.usefixtures('one_thread')  # conftest.py


def random_swin(window: int, depths=TINY['depths']) -> dict:
    """mmdet-named state dict of a Swin with random weights everywhere (norms and tables included)."""
    from mmdet.models.backbones import SwinTransformer
    torch.manual_seed(0)
    swin = SwinTransformer(**dict(TINY, depths=depths), window_size=window)
    with torch.no_grad():
        for p in swin.parameters():
            p.normal_()
    return swin.state_dict()


def to_original_naming(sd: dict) -> dict:
    """The inverse of mmdet's swin_converter: the key names and merge layout SimMIM's own Swin writes."""
    out = {}
    for k, v in sd.items():
        if k.startswith('norm'):  # the detector's output norms; the original has one final `norm`
            continue
        k = (k.replace('stages.', 'layers.').replace('attn.w_msa.', 'attn.').replace('ffn.layers.0.0.', 'mlp.fc1.')
             .replace('ffn.layers.1.', 'mlp.fc2.').replace('patch_embed.projection.', 'patch_embed.proj.'))
        if 'downsample.reduction' in k:
            n, c = v.shape
            v = v.reshape(n, c // 4, 4).transpose(1, 2)[:, ORDER].reshape(n, c)
        elif 'downsample.norm' in k:
            v = v.reshape(v.shape[0] // 4, 4).T[ORDER].reshape(-1)
        out[k] = v
    out['layers.0.blocks.1.attn_mask'] = torch.zeros(4, 36, 36)  # a shifted block's buffer in the original Swin
    out['norm.weight'], out['norm.bias'] = torch.ones(256), torch.zeros(256)
    return out


def save_simmim(path, sd: dict):
    """torch.save a raw SimMIM checkpoint: encoder/decoder weights plus a yacs CfgNode (faked: yacs is absent)."""
    package, module = types.ModuleType('yacs'), types.ModuleType('yacs.config')
    module.CfgNode = type('CfgNode', (dict,), {'__module__': 'yacs.config'})
    package.config = module
    sys.modules.update({'yacs': package, 'yacs.config': module})  # pickle re-imports the class by name
    try:
        config = module.CfgNode(MODEL=module.CfgNode(TYPE='swin', SWIN=module.CfgNode(WINDOW_SIZE=6)))
        model = {f'encoder.{k}': v for k, v in sd.items()}
        model.update({'encoder.mask_token': torch.zeros(1, 1, 32), 'decoder.0.weight': torch.zeros(3072, 256, 1, 1),
                      'decoder.0.bias': torch.zeros(3072)})
        torch.save(dict(model=model, config=config, epoch=799), path)
    finally:
        del sys.modules['yacs'], sys.modules['yacs.config']


def detector(checkpoint):
    """The Swin-B SimMIM config with Swin's widths shrunk; everything else (type, window 7, loader) as shipped."""
    cfg = Config.fromfile(osp.join(ROOT, 'det_configs', 'mask_rcnn_swin_b_simmim.py'))
    cfg.merge_from_dict({'model.backbone': dict(TINY, init_cfg=dict(checkpoint=str(checkpoint))),
                         'model.neck.in_channels': [32, 64, 128, 256]})
    init_default_scope('mmdet')
    from mmdet.registry import MODELS
    return MODELS.build(cfg.model)


def test_raw_simmim_window6_loads_strictly(tmp_path):
    src = random_swin(window=6)
    save_simmim(tmp_path / 'simmim.pth', to_original_naming(src))
    model = detector(tmp_path / 'simmim.pth')
    model.init_weights()
    got = model.backbone.state_dict()
    tables = [k for k in src if k.endswith('relative_position_bias_table')]
    assert len(tables) == 8
    for k, v in src.items():
        if k in tables:
            heads = v.shape[1]
            assert got[k].shape == (13 * 13, heads)  # (2*6-1)^2 -> (2*7-1)^2 rows
            # offset (0, 0) sits at the grid centre, which align_corners=False bicubic maps onto itself exactly
            torch.testing.assert_close(got[k][6 * 13 + 6], v[5 * 11 + 5])
        elif not (k.startswith('norm') or k.endswith('relative_position_index')):
            torch.testing.assert_close(got[k], v, rtol=0, atol=0, msg=k)  # converter ∘ inverse = identity
    with torch.no_grad():
        feats = model.backbone(torch.randn(1, 3, 64, 64))
    assert [tuple(f.shape[1:]) for f in feats] == [(32, 16, 16), (64, 8, 8), (128, 4, 4), (256, 2, 2)]


def test_constant_table_stays_constant(tmp_path):
    src = random_swin(window=6)
    key = 'stages.2.blocks.0.attn.w_msa.relative_position_bias_table'
    src[key] = torch.tensor([0.5, -2.0, 3.0, 1.0]).expand(121, 4).clone()  # bicubic weights sum to one
    save_simmim(tmp_path / 'simmim.pth', to_original_naming(src))
    model = detector(tmp_path / 'simmim.pth')
    model.init_weights()
    torch.testing.assert_close(model.backbone.state_dict()[key], src[key][:1].expand(169, 4))


def test_converted_checkpoint_loads(tmp_path):
    src = random_swin(window=7)
    state = {f'backbone.{k}': v for k, v in src.items() if not k.startswith('norm')}
    state['neck.lateral_convs.0.conv.weight'] = torch.zeros(1)  # other detector parts are not the backbone's
    torch.save(dict(state_dict=state, meta=dict(epoch=1)), tmp_path / 'converted.pth')
    model = detector(tmp_path / 'converted.pth')
    model.init_weights()
    got = model.backbone.state_dict()
    for k, v in src.items():
        if not k.startswith('norm'):
            torch.testing.assert_close(got[k], v, rtol=0, atol=0)


def test_wrong_depth_is_a_clear_error(tmp_path):
    save_simmim(tmp_path / 'swin.pth', to_original_naming(random_swin(window=6, depths=(2, 2, 1, 2))))
    with pytest.raises(CheckpointError, match=r'swin.pth does not fit .*depths=\(2, 2, 2, 2\).*missing.*'
                                              r'stages\.2\.blocks\.1\.'):
        detector(tmp_path / 'swin.pth').init_weights()


def test_unexpected_key_is_a_clear_error(tmp_path):
    sd = to_original_naming(random_swin(window=6))
    sd['layers.1.blocks.0.attn.extra.weight'] = torch.zeros(2)
    save_simmim(tmp_path / 'swin.pth', sd)
    with pytest.raises(CheckpointError, match=r'1 unexpected checkpoint keys: stages\.1\.blocks\.0\.attn\.w_msa\.'
                                              r'extra\.weight'):
        detector(tmp_path / 'swin.pth').init_weights()


def test_truncated_file_is_a_clear_error(tmp_path):
    save_simmim(tmp_path / 'full.pth', to_original_naming(random_swin(window=6)))
    data = (tmp_path / 'full.pth').read_bytes()
    (tmp_path / 'cut.pth').write_bytes(data[:len(data) // 2])
    with pytest.raises(CheckpointError, match=r'cut.pth: cannot read .*truncated'):
        detector(tmp_path / 'cut.pth').init_weights()
