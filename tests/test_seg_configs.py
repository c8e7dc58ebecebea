"""seg_configs/: every config loads and builds, carries docs/RECIPES.md "ADE20K" values, the multi-scale test yields the
paper's five absolute scales, and the layer-decay optimizer gives hand-computed lr scales and weight decays."""
import copy
import functools
import glob
import os.path as osp
import re
from contextlib import contextmanager

import cv2
import numpy as np
import pytest
import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope

from backbone import VARIANTS
from backbone.zoo import ZOO
from runtime.seg_eval import build_cfg, set_tta_flip
from tools.seg_eval import parse_args

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = sorted(p for p in glob.glob(osp.join(ROOT, 'seg_configs', '*.py')) if '_640_' not in p)  # 512 recipe
SIZES = dict(a='atto', f='femto', p='pico', n='nano', t='tiny', b='base', l='large', h='huge')
SWIN_WIDTHS = dict(b=[128, 256, 512, 1024], l=[192, 384, 768, 1536])  # embed_dims × (1, 2, 4, 8)


@functools.cache
def _load(name: str) -> Config:
    return Config.fromfile(osp.join(ROOT, 'seg_configs', name))


def load(name: str) -> Config:
    """A fresh copy of the parsed config (parsing costs ~1 s on two cores)."""
    return copy.deepcopy(_load(name))


def build(cfg: Config):
    from mmseg.registry import MODELS
    init_default_scope('mmseg')
    return MODELS.build(cfg.model)


def test_ten_configs():
    names = sorted(osp.basename(p) for p in CONFIGS)
    assert names == sorted([f'upernet_cnx2_{k}.py' for k in SIZES] + ['upernet_swin_b_simmim.py',
                                                                      'upernet_swin_l_simmim.py'])


def test_widths_equal_variants(monkeypatch):
    assert load('upernet_cnx2_a.py').widths == {arch: list(v['dims']) for arch, v in VARIANTS.items()}
    # one table: the config reads backbone.VARIANTS, so a size added there appears without editing the config
    monkeypatch.setitem(VARIANTS, 'probe', dict(depths=(1, 1, 1, 1), dims=(8, 16, 32, 64)))
    assert Config.fromfile(osp.join(ROOT, 'seg_configs', 'upernet_cnx2_a.py')).widths['probe'] == [8, 16, 32, 64]


@pytest.mark.parametrize('path', CONFIGS, ids=osp.basename)
def test_recipe_values(path):
    cfg = load(osp.basename(path))
    assert cfg.train_cfg.max_iters == 160000 and cfg.train_dataloader.batch_size == 2  # 2 × 8 GPUs = 16
    warm_up, poly = cfg.param_scheduler
    assert (warm_up.type, warm_up.begin, warm_up.end, warm_up.by_epoch) == ('LinearLR', 0, 1500, False)
    assert (poly.type, poly.power, poly.eta_min, poly.begin, poly.end) == ('PolyLR', 1.0, 0.0, 1500, 160000)
    optim = cfg.optim_wrapper
    assert (optim.type, optim.optimizer.type, optim.optimizer.weight_decay) == ('DeviceAmpOptimWrapper', 'AdamW', 0.05)
    assert optim.optimizer.lr in (1e-4, 2e-4, 3e-4)
    train = {t.type: t for t in cfg.train_dataloader.dataset.pipeline}
    assert (train['RandomResize'].scale, train['RandomResize'].ratio_range) == ((2048, 512), (0.5, 2.0))
    assert (train['RandomCrop'].crop_size, train['RandomCrop'].cat_max_ratio) == ((512, 512), 0.75)
    assert train['RandomFlip'].prob == 0.5 and 'PhotoMetricDistortion' in train
    assert train['LoadAnnotations'].reduce_zero_label and cfg.train_dataloader.dataset.type == 'ADE20KDataset'
    head, aux, model = cfg.model.decode_head, cfg.model.auxiliary_head, cfg.model
    assert (head.type, head.channels, head.pool_scales, head.dropout_ratio) == ('UPerHead', 512, (1, 2, 3, 6), 0.1)
    assert (aux.type, aux.in_index, aux.channels, aux.loss_decode.loss_weight) == ('FCNHead', 2, 256, 0.4)
    assert head.num_classes == aux.num_classes == 150 and model.data_preprocessor.size == (512, 512)
    assert (model.test_cfg.mode, model.test_cfg.crop_size, model.test_cfg.stride) == ('slide', (512, 512), (341, 341))
    assert aux.in_channels == head.in_channels[2]
    letter = re.search(r'_(\w)(_simmim)?\.py$', path)[1]
    if 'swin' in path:
        assert model.backbone.type == 'SimMIMSwinTransformer' and head.in_channels == SWIN_WIDTHS[letter]
        return
    backbone = model.backbone
    assert backbone.arch == SIZES[letter] and head.in_channels == list(VARIANTS[backbone.arch]['dims'])
    assert 0.1 <= backbone.drop_path_rate <= 0.4 and backbone.get('with_cp', False) == (letter in 'lh')
    assert backbone.init_cfg == dict(type='Pretrained', checkpoint=f'convnextv2_{backbone.arch}.in1k')  # A.4: IN-1K FT
    assert ZOO[backbone.init_cfg.checkpoint].url.endswith(f'/convnextv2/im1k/convnextv2_{backbone.arch}_1k_224_ema.pt')
    assert optim.constructor == 'ConvNeXtV2LayerDecayConstructor'
    assert optim.paramwise_cfg.decay_type == 'stage_wise' and optim.paramwise_cfg.decay_rate in (0.8, 0.9)


@pytest.mark.parametrize('letter', 'afpnt')
def test_small_models_build_and_run(letter):
    cfg = load(f'upernet_cnx2_{letter}.py')
    cfg.model.decode_head.channels = 32  # the 512-channel head is built in full by test_layer_decay_optimizer
    model = build(cfg).eval()
    dims = VARIANTS[SIZES[letter]]['dims']
    with torch.no_grad():
        feats = model.extract_feat(torch.zeros(1, 3, 64, 96))
        logits = model.decode_head(feats)
    assert [tuple(f.shape) for f in feats] == [(1, d, 16 // 2 ** i, 24 // 2 ** i) for i, d in enumerate(dims)]
    assert tuple(logits.shape) == (1, 150, 16, 24)  # UPerHead predicts at stride 4


@contextmanager
def meta_parameters():
    """Each parameter and buffer moves to the meta device as it is registered (accelerate's init_empty_weights):
    shapes only, so the 200M–700M parameter models never sit in memory."""
    register_parameter, register_buffer = nn.Module.register_parameter, nn.Module.register_buffer

    def to_meta_parameter(self, name, p):
        register_parameter(self, name, p if p is None else nn.Parameter(p.to('meta'), p.requires_grad))

    def to_meta_buffer(self, name, b, persistent=True):
        register_buffer(self, name, b if b is None else b.to('meta'), persistent)

    nn.Module.register_parameter, nn.Module.register_buffer = to_meta_parameter, to_meta_buffer
    try:
        yield
    finally:
        nn.Module.register_parameter, nn.Module.register_buffer = register_parameter, register_buffer


@pytest.mark.parametrize('name', ['upernet_cnx2_l.py', 'upernet_cnx2_h.py', 'upernet_swin_b_simmim.py',
                                  'upernet_swin_l_simmim.py'])
def test_large_models_build_on_meta_device(name):
    cfg = load(name)
    with meta_parameters():
        model = build(cfg).eval()
    feats = model.extract_feat(torch.empty(1, 3, 64, 96, device='meta'))
    assert [f.shape[1] for f in feats] == cfg.model.decode_head.in_channels
    assert [tuple(f.shape[2:]) for f in feats] == [(16, 24), (8, 12), (4, 6), (2, 3)]
    if 'cnx2' in name:
        assert model.backbone.with_cp and sum(p.numel() for p in model.backbone.parameters()) > 190e6


def expected_scale(name: str, rate: float, num_layers: int) -> float:
    """docs/RECIPES.md stage_wise: downsample layers rate^(L+1), stage s rate^(L-s), all else (norms, heads) 1."""
    m = re.match(r'backbone\.(downsample_layers|stages)\.(\d)\.', name)
    if m is None:
        return 1.0
    return rate ** (num_layers + 1) if m[1] == 'downsample_layers' else rate ** (num_layers - int(m[2]))


@pytest.mark.parametrize('letter, num_layers', [('t', 6), ('b', 12)])
def test_layer_decay_optimizer(letter, num_layers):
    cfg = load(f'upernet_cnx2_{letter}.py')
    model = build(cfg)
    # AmpOptimWrapper needs a GPU; its parameter groups come from the same constructor
    optim = build_optim_wrapper(model, dict(cfg.optim_wrapper, type='OptimWrapper')).optimizer
    lr, rate = cfg.optim_wrapper.optimizer.lr, cfg.optim_wrapper.paramwise_cfg.decay_rate
    names = {id(p): n for n, p in model.named_parameters()}
    got = {names[id(p)]: (g['lr'], g['weight_decay']) for g in optim.param_groups for p in g['params']}
    assert got.keys() == set(names.values())
    params = dict(model.named_parameters())
    for name, (group_lr, wd) in got.items():
        assert group_lr == pytest.approx(lr * expected_scale(name, rate, num_layers)), name
        exempt = params[name].ndim == 1 or name.endswith(('grn.gamma', 'grn.beta'))  # biases and norms are 1-D
        assert wd == (0. if exempt else 0.05), name
    assert got['backbone.stages.1.0.grn.gamma'][1] == 0. and params['backbone.stages.1.0.grn.gamma'].ndim == 4
    assert got['decode_head.conv_seg.weight'] == (lr, 0.05) and got['backbone.norm3.weight'] == (lr, 0.)
    if letter == 'b':  # docs/RECIPES.md's worked example, L = 12, decay 0.9
        assert got['backbone.downsample_layers.2.1.weight'][0] / lr == pytest.approx(0.254, abs=1e-3)
        assert got['backbone.stages.3.2.pwconv1.weight'][0] / lr == pytest.approx(0.387, abs=1e-3)


# the paper's five test sizes (w, h) = s × (2048, 512), s in 0.75 … 1.25
PAPER_SIZES = [(1536, 384), (1792, 448), (2048, 512), (2304, 576), (2560, 640)]


@pytest.mark.parametrize('flip', [False, True])
def test_multi_scale_pipeline_sizes(tmp_path, flip):
    from mmcv.transforms import Compose
    cfg = load('upernet_cnx2_a.py')
    assert cfg.tta_flip is False
    if flip:
        set_tta_flip(cfg.tta_pipeline, True)
    init_default_scope('mmseg')
    img, seg = tmp_path / 'img.jpg', tmp_path / 'seg.png'
    cv2.imwrite(str(img), np.full((256, 1024, 3), 128, np.uint8))  # (h, w): the 4:1 box shape, so sizes are exact
    cv2.imwrite(str(seg), np.ones((256, 1024), np.uint8))
    out = Compose(cfg.tta_pipeline)(dict(img_path=str(img), seg_map_path=str(seg), reduce_zero_label=True,
                                         seg_fields=[]))
    views = [(s.img_shape[1], s.img_shape[0], s.flip) for s in out['data_samples']]
    expected = [(w, h, f) for w, h in PAPER_SIZES for f in ((False, True) if flip else (False,))]
    assert sorted(views) == sorted(expected)
    assert all(tuple(x.shape) == (3, h, w) for x, (w, h, _) in zip(out['inputs'], views))


def test_seg_eval_flip_option():
    args = parse_args([osp.join(ROOT, 'seg_configs/upernet_cnx2_a.py'), 'x.pth', '--cfg-options', 'tta_flip=True'])
    cfg = build_cfg(args.config, args.checkpoint, multi_scale=True, cfg_options=args.cfg_options)
    flips = [g for g in cfg.test_dataloader.dataset.pipeline[1]['transforms'] if g[0]['type'] == 'RandomFlip'][0]
    assert [t['prob'] for t in flips] == [0., 1.] and cfg.model.type == 'SegTTAModel'
    assert cfg.test_evaluator.type == 'PerClassIoUMetric' and cfg.model.module.test_cfg.mode == 'slide'


def test_whole_image_multi_scale_option_leaves_single_scale_sliding():
    opts = parse_args(['c.py', 'x.pth', '--cfg-options', 'tta_mode=whole']).cfg_options  # ConvNeXt V1's protocol
    config = osp.join(ROOT, 'seg_configs/upernet_cnx2_a.py')
    assert build_cfg(config, 'x.pth', multi_scale=True, cfg_options=opts).model.module.test_cfg.mode == 'whole'
    assert build_cfg(config, 'x.pth', multi_scale=False, cfg_options=opts).model.test_cfg.mode == 'slide'
