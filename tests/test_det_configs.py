"""det_configs/: all ten configs load with the docs/RECIPES.md "COCO" values, `widths` equals VARIANTS, the models build
with matching neck widths, and the layer-decay optimizer gives hand-computed lr scales / weight decays (t, b)."""
import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

from backbone import VARIANTS
from backbone.zoo import ZOO

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = sorted(glob.glob(osp.join(ROOT, 'det_configs', 'mask_rcnn_*.py')))  # Cascade: test_cascade_configs.py
SIZES = dict(a='atto', f='femto', p='pico', n='nano', t='tiny', b='base', l='large', h='huge')
LSJ = ['LoadImageFromFile', 'LoadAnnotations', 'RandomResize', 'RandomCrop', 'FilterAnnotations', 'RandomFlip',
       'PackDetInputs']


pytestmark = pytest.mark.usefixtures('one_thread')  # conftest.py


def load(name: str) -> Config:
    return Config.fromfile(osp.join(ROOT, 'det_configs', name))


def build_detector(cfg: Config):
    init_default_scope('mmdet')
    from mmdet.registry import MODELS
    return MODELS.build(cfg.model)


def test_ten_configs():
    names = {osp.basename(p) for p in CONFIGS}
    assert names == {f'mask_rcnn_cnx2_{s}.py' for s in SIZES} | {'mask_rcnn_swin_b_simmim.py',
                                                                 'mask_rcnn_swin_l_simmim.py'}


@pytest.mark.parametrize('path', CONFIGS, ids=osp.basename)
def test_recipe_values(path):
    cfg = Config.fromfile(path)
    assert cfg.train_cfg.max_epochs == 36
    warmup, steps = cfg.param_scheduler
    assert (warmup.type, warmup.by_epoch, warmup.begin, warmup.end) == ('LinearLR', False, 0, 1000)
    assert (steps.type, steps.by_epoch, list(steps.milestones), steps.gamma) == ('MultiStepLR', True, [27, 33], 0.1)
    assert cfg.train_dataloader.batch_size * 8 == cfg.auto_scale_lr.base_batch_size == 32
    opt = cfg.optim_wrapper.optimizer
    assert dict(opt) == dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05)  # no SGD leftovers
    assert cfg.optim_wrapper.type == 'DeviceAmpOptimWrapper'  # mmengine's AmpOptimWrapper on a GPU
    assert cfg.model.test_cfg.rcnn.nms.type == 'soft_nms' and cfg.model.test_cfg.rpn.nms.type == 'nms'
    data = cfg.train_dataloader.dataset
    assert (data.type, data.data_root, data.ann_file) == ('CocoDataset', 'data/coco/', 'annotations/'
                                                                                      'instances_train2017.json')
    assert [t.type for t in data.pipeline] == LSJ
    resize, crop, filt, flip = data.pipeline[2:6]
    assert (tuple(resize.scale), tuple(resize.ratio_range), resize.keep_ratio) == ((1024, 1024), (0.1, 2.0), True)
    # 'absolute_range' with both bounds 1024 crops exactly min(1024, side): the absolute 1024 crop
    assert tuple(crop.crop_size) == (1024, 1024) and crop.crop_type in ('absolute', 'absolute_range')
    assert crop.recompute_bbox and filt.min_gt_bbox_wh == (1e-2, 1e-2) and flip.prob == 0.5
    test_resize = cfg.test_dataloader.dataset.pipeline[1]
    assert (test_resize.type, tuple(test_resize.scale), test_resize.keep_ratio) == ('Resize', (1333, 800), True)
    assert cfg.test_evaluator.type == 'CocoMetric' and list(cfg.test_evaluator.metric) == ['bbox', 'segm']
    assert cfg.test_evaluator.ann_file == 'data/coco/annotations/instances_val2017.json'


@pytest.mark.parametrize('letter', SIZES)
def test_cnx2_leaf(letter):
    cfg = load(f'mask_rcnn_cnx2_{letter}.py')
    arch, bb = SIZES[letter], cfg.model.backbone
    assert (bb.type, bb.arch) == ('ConvNeXtV2', arch)
    assert cfg.model.neck.in_channels == list(VARIANTS[arch]['dims'])
    assert bb.init_cfg == dict(type='Pretrained', checkpoint=f'convnextv2_{arch}.fcmae')  # the paper: FCMAE weights
    assert ZOO[bb.init_cfg.checkpoint].url.endswith(f'/convnextv2/pt_only/convnextv2_{arch}_1k_224_fcmae.pt')
    assert 0.2 <= bb.drop_path_rate <= 0.5 and (letter != 'b' or bb.drop_path_rate == 0.4)  # sweep; mmdet's B
    assert bb.get('with_cp', False) == (letter in 'lh')
    assert cfg.optim_wrapper.constructor == 'ConvNeXtV2LayerDecayConstructor'
    assert cfg.optim_wrapper.paramwise_cfg == dict(decay_rate=0.95, decay_type='layer_wise')
    assert cfg.custom_imports.imports == ['backbone', 'runtime', 'runtime.det_amp']


def test_widths_table_equals_variants(monkeypatch):
    assert load('mask_rcnn_cnx2_t.py').widths == {k: list(v['dims']) for k, v in VARIANTS.items()}
    # one table: the config reads backbone.VARIANTS, so a size added there appears without editing the config
    monkeypatch.setitem(VARIANTS, 'probe', dict(depths=(1, 1, 1, 1), dims=(8, 16, 32, 64)))
    assert load('mask_rcnn_cnx2_t.py').widths['probe'] == [8, 16, 32, 64]


def test_swin_configs():
    b, large = load('mask_rcnn_swin_b_simmim.py'), load('mask_rcnn_swin_l_simmim.py')
    for cfg, dims, heads, cp in ((b, 128, (4, 8, 16, 32), False), (large, 192, (6, 12, 24, 48), True)):
        bb = cfg.model.backbone
        assert (bb.type, bb.embed_dims, tuple(bb.depths), tuple(bb.num_heads)) == (
            'SimMIMSwinTransformer', dims, (2, 2, 18, 2), heads)
        assert bb.window_size == 7 and bb.get('with_cp', False) == cp and 'arch' not in bb
        assert cfg.model.neck.in_channels == [dims * 2 ** i for i in range(4)]
        assert cfg.custom_imports.imports == ['backbone', 'backbone.swin_simmim', 'runtime', 'runtime.det_amp']
        assert 'decay_rate' not in cfg.optim_wrapper.paramwise_cfg
    assert large.model.backbone.init_cfg.checkpoint == 'ckpts/simmim_swin_l.pth'


def check_neck_fits(model, cfg):
    """The backbone's features have the neck's in_channels at strides 4..32, and the FPN runs on them."""
    model.eval()
    with torch.no_grad():
        feats = model.backbone(torch.zeros(1, 3, 64, 64))
        assert [f.shape[1] for f in feats] == cfg.model.neck.in_channels
        assert [f.shape[-1] for f in feats] == [16, 8, 4, 2]  # strides 4, 8, 16, 32
        assert [o.shape[1] for o in model.neck(feats)] == [256] * 5


@pytest.mark.parametrize('name', [f'mask_rcnn_cnx2_{s}.py' for s in 'afpn'] + ['mask_rcnn_swin_b_simmim.py'])
def test_model_builds_and_neck_fits(name):
    """t and b are built in the optimizer test; l and h only checked through config values (hundreds of MB)."""
    cfg = load(name)
    check_neck_fits(build_detector(cfg), cfg)


def recipe_layer_id(name: str, num_layers: int) -> int:
    """docs/RECIPES.md layer_wise table, written out: downsample 0→0, 1→2, 2→3, 3→L; stage 0→1, 1→2, 2→3+j//3, 3→L."""
    parts = name.split('.')
    if parts[0] != 'backbone' or parts[1] not in ('downsample_layers', 'stages'):
        return num_layers + 1  # output norms, neck, heads
    stage = int(parts[2])
    if parts[1] == 'downsample_layers':
        return [0, 2, 3, num_layers][stage]
    return [1, 2, 3 + int(parts[3]) // 3, num_layers][stage]


@pytest.mark.parametrize('letter, num_layers', [('t', 6), ('b', 12)])
def test_layer_decay_optimizer(letter, num_layers):
    from mmengine.optim import build_optim_wrapper
    cfg = load(f'mask_rcnn_cnx2_{letter}.py')
    model = build_detector(cfg)
    check_neck_fits(model, cfg)
    wrapper = build_optim_wrapper(model, dict(cfg.optim_wrapper, type='OptimWrapper'))  # AMP refuses CPU
    group = {id(p): g for g in wrapper.optimizer.param_groups for p in g['params']}
    params = dict(model.named_parameters())
    assert len(group) == len(params)
    for name, p in params.items():
        scale = 0.95 ** (num_layers + 1 - recipe_layer_id(name, num_layers))
        assert group[id(p)]['lr'] == pytest.approx(1e-4 * scale, rel=1e-9), name
        exempt = p.ndim == 1 or name.endswith(('.bias', '.grn.gamma', '.grn.beta'))
        assert group[id(p)]['weight_decay'] == (0. if exempt else 0.05), name
    lr = {name: group[id(p)]['lr'] / 1e-4 for name, p in params.items()}
    wd = {name: group[id(p)]['weight_decay'] for name, p in params.items()}
    last = VARIANTS[SIZES[letter]]['depths'][2] - 1
    # hand-computed (docs/RECIPES.md examples): stem 0.95^(L+1), last stage-2 block 0.95^(L+1-(3+j//3)), stage 3 0.95
    assert lr['backbone.downsample_layers.0.0.weight'] == pytest.approx(0.95 ** (num_layers + 1))
    assert lr[f'backbone.stages.2.{last}.pwconv1.weight'] == pytest.approx(0.95 ** 2)  # t: j=8 → id 5 = L-1;
    assert lr['backbone.stages.2.0.pwconv1.weight'] == pytest.approx(0.95 ** (num_layers - 2))  # b: j=26 → 11 = L-1
    assert lr['backbone.stages.3.0.dwconv.weight'] == pytest.approx(0.95)
    for name in ('backbone.norm3.weight', 'neck.lateral_convs.0.conv.weight', 'roi_head.bbox_head.fc_cls.weight'):
        assert lr[name] == pytest.approx(1)
    if num_layers == 12:
        assert lr['backbone.downsample_layers.0.0.weight'] == pytest.approx(0.513, abs=5e-4)
    assert wd['backbone.stages.0.0.grn.gamma'] == wd['backbone.stages.0.0.grn.beta'] == 0  # 4-D, still exempt
    assert wd['backbone.stages.0.0.pwconv1.weight'] == wd['neck.fpn_convs.0.conv.weight'] == 0.05
    assert wd['neck.fpn_convs.0.conv.bias'] == wd['backbone.norm0.weight'] == 0
