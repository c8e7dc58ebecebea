"""det_configs/cascade_mask_rcnn_cnx2_*.py: every recipe value against its source, written here with the file and
line it came from (ConvNeXt V1's Cascade configs, facebookresearch/ConvNeXt@048efce; mmdetection 3.3.0's ConvNeXt
port and cascade model base, as installed); the model equals mmdet's Cascade Mask R-CNN but for the backbone and V1's
box heads; it builds and computes all three stages' losses at CPU size; and it loads the Mask R-CNN checkpoints."""
import os
import os.path as osp

import mmdet
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner.checkpoint import get_state_dict, save_checkpoint, weights_to_cpu

from backbone import VARIANTS, ConvNeXtV2
from backbone.checkpoint import load_pretrained
from backbone.zoo import ZOO, cache_path
from toyruns.stages import head_options

pytestmark = pytest.mark.usefixtures('one_thread')  # conftest.py
ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
SIZES = dict(a='atto', f='femto', p='pico', n='nano', t='tiny', b='base', l='large', h='huge')
V1 = 'object_detection/configs/convnext/cascade_mask_rcnn_convnext_{}_patch4_window7_mstrain_480-800_giou_4conv1f_' \
     'adamw_3x_coco_{}.py'
# V1's Cascade configs: drop_path_rate (L20), lr (L131), decay_rate (L132), num_layers (L134) per published size
V1_CASCADE = {('tiny', 'in1k'): (0.4, 2e-4, 0.7, 6), ('small', 'in1k'): (0.6, 2e-4, 0.7, 12),
              ('base', 'in1k'): (0.7, 2e-4, 0.8, 12), ('base', 'in22k'): (0.6, 1e-4, 0.8, 12),
              ('large', 'in22k'): (0.7, 1e-4, 0.7, 12), ('xlarge', 'in22k'): (0.8, 1e-4, 0.7, 12)}
# The V1 config each V2 size takes its drop path and layer decay from (docs/RECIPES.md): the nearest published size
NEAREST = dict(a=('tiny', 'in1k'), f=('tiny', 'in1k'), p=('tiny', 'in1k'), n=('tiny', 'in1k'), t=('tiny', 'in1k'),
               b=('base', 'in1k'), l=('large', 'in22k'), h=('xlarge', 'in22k'))
# V1 ..._tiny_..._in1k.py L27-45 (the same in every size): one of the three "4conv1fc" GIoU box heads
V1_HEAD = dict(type='ConvFCBBoxHead', num_shared_convs=4, num_shared_fcs=1, in_channels=256, conv_out_channels=256,
               fc_out_channels=1024, roi_feat_size=7, num_classes=80, reg_class_agnostic=False, reg_decoded_bbox=True,
               norm_cfg=dict(type='SyncBN', requires_grad=True),
               loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
               loss_bbox=dict(type='GIoULoss', loss_weight=10.0))
V1_STDS = [[0.1, 0.1, 0.2, 0.2], [0.05, 0.05, 0.1, 0.1], [0.033, 0.033, 0.067, 0.067]]  # L39, L58, L77
# V1 L97-100 and L114-117 (mmdet's port L96-98, L113-116): short sides 480..800, long side 1333
MS = [(480, 1333), (512, 1333), (544, 1333), (576, 1333), (608, 1333), (640, 1333), (672, 1333), (704, 1333),
      (736, 1333), (768, 1333), (800, 1333)]
MMDET = osp.join(osp.dirname(mmdet.__file__), '.mim', 'configs')


def load(name: str) -> Config:
    return Config.fromfile(osp.join(ROOT, 'det_configs', name))


def plain(d):
    """A config value as plain dicts and lists, runtime/det_amp's float32-casting subclasses named as mmdet's own,
    without the registry scope mmengine records."""
    if isinstance(d, dict):
        return {k: (v.removeprefix('Amp') if k == 'type' else plain(v)) for k, v in d.items() if k != '_scope_'}
    return [plain(v) for v in d] if isinstance(d, (list, tuple)) else d


def test_eight_leaves_over_one_base():
    for letter in SIZES:
        text = open(osp.join(ROOT, 'det_configs', f'cascade_mask_rcnn_cnx2_{letter}.py')).read()
        assert "_base_ = './_base_/cascade_mask_rcnn_cnx2_3x.py'" in text and len(text.splitlines()) <= 12
    base = open(osp.join(ROOT, 'det_configs', '_base_', 'cascade_mask_rcnn_cnx2_3x.py')).read()
    assert "_base_ = './mask_rcnn_cnx2_lsj_3x.py'" in base  # the Mask R-CNN recipe, only the differences here


@pytest.mark.parametrize('letter', SIZES)
def test_recipe_values(letter):
    cfg, arch = load(f'cascade_mask_rcnn_cnx2_{letter}.py'), SIZES[letter]
    drop_path, _, decay, v1_layers = V1_CASCADE[NEAREST[letter]]
    bb = cfg.model.backbone
    assert (bb.type, bb.arch, bb.drop_path_rate) == ('ConvNeXtV2', arch, drop_path)
    mask_rcnn = load(f'mask_rcnn_cnx2_{letter}.py').model.backbone
    assert bb.init_cfg == mask_rcnn.init_cfg == dict(type='Pretrained', checkpoint=f'convnextv2_{arch}.fcmae')
    assert bb.get('with_cp', False) == mask_rcnn.get('with_cp', False) == (letter in 'lh')
    assert cfg.model.neck.in_channels == list(VARIANTS[arch]['dims'])
    # lr 2e-4: every V1 IN-1K Cascade config (L131); the FCMAE weights are IN-1K too (V1's IN-22K configs: 1e-4)
    assert dict(cfg.optim_wrapper.optimizer) == dict(type='AdamW', lr=2e-4, betas=(0.9, 0.999), weight_decay=0.05)
    assert cfg.optim_wrapper.paramwise_cfg == dict(decay_rate=decay, decay_type='layer_wise')  # L132-133
    assert cfg.optim_wrapper.constructor == 'ConvNeXtV2LayerDecayConstructor'  # its num_layers: 6 / 12 as V1 L134
    assert v1_layers == (6 if arch in ('atto', 'femto', 'pico', 'nano', 'tiny') else 12)
    assert cfg.optim_wrapper.type == 'DeviceAmpOptimWrapper'  # V1 T/S/B use_fp16=True (L146); mmdet's port: AMP
    # 36 epochs, steps at 27 and 33 (V1 L135-136; mmdet's port L123-138), 1000-iteration warm-up from 0.001 (L127-130)
    assert cfg.train_cfg.max_epochs == 36
    warmup, steps = cfg.param_scheduler
    assert (warmup.type, warmup.start_factor, warmup.by_epoch, warmup.begin, warmup.end) == (
        'LinearLR', 0.001, False, 0, 1000)
    assert (steps.type, steps.by_epoch, list(steps.milestones), steps.gamma) == ('MultiStepLR', True, [27, 33], 0.1)
    # 2 images x 8 GPUs = 16 (mmdet _base_/datasets/coco_instance.py L38, schedules/schedule_1x.py auto_scale_lr)
    assert cfg.train_dataloader.batch_size * 8 == cfg.auto_scale_lr.base_batch_size == 16
    assert cfg.train_dataloader.batch_sampler == dict(type='AspectRatioBatchSampler')  # coco_instance.py L42
    data = cfg.train_dataloader.dataset
    assert (data.type, data.ann_file, data.filter_cfg) == ('CocoDataset', 'annotations/instances_train2017.json',
                                                           dict(filter_empty_gt=True, min_size=32))
    load_image, load_ann, flip, choice, pack = data.pipeline
    assert (load_image.type, load_ann.type, load_ann.with_bbox, load_ann.with_mask, pack.type) == (
        'LoadImageFromFile', 'LoadAnnotations', True, True, 'PackDetInputs')
    assert (flip.type, flip.prob) == ('RandomFlip', 0.5)  # V1 L93
    assert choice.type == 'RandomChoice' and choice.get('prob') is None  # V1 L94 AutoAugment: a uniform choice
    (ms,), (pre, crop, post) = choice.transforms
    assert [(t.type, [tuple(s) for s in t.scales], t.keep_ratio) for t in (ms, post)] == [
        ('RandomChoiceResize', MS, True)] * 2
    assert [tuple(s) for s in pre.scales] == [(400, 1333), (500, 1333), (600, 1333)]  # V1 L106
    assert (crop.type, crop.crop_type, tuple(crop.crop_size), crop.allow_negative_crop) == (
        'RandomCrop', 'absolute_range', (384, 600), True)  # V1 L109-112
    test_resize = cfg.test_dataloader.dataset.pipeline[1]
    assert (test_resize.type, tuple(test_resize.scale), test_resize.keep_ratio) == ('Resize', (1333, 800), True)
    assert list(cfg.test_evaluator.metric) == ['bbox', 'segm']


def test_model_is_mmdets_cascade_with_v1_heads():
    """All but the backbone, the FPN's input widths and the box heads equal mmdet's cascade-mask-rcnn_r50_fpn.py
    (V1's model base, L10-208, in mmdet 3 names); the box heads are V1's, stage by stage."""
    ours = plain(load('cascade_mask_rcnn_cnx2_t.py').model.to_dict())
    ref = plain(Config.fromfile(osp.join(MMDET, '_base_/models/cascade-mask-rcnn_r50_fpn.py')).model.to_dict())
    heads = ours['roi_head'].pop('bbox_head')
    assert heads == [dict(V1_HEAD, bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0., 0., 0., 0.],
                                                   target_stds=stds)) for stds in V1_STDS]
    ref['roi_head'].pop('bbox_head')
    for model in (ours, ref):
        model.pop('backbone')
        model['neck'].pop('in_channels')
    assert ours == ref
    assert ref['test_cfg']['rcnn']['nms'] == dict(type='nms', iou_threshold=0.5)  # V1 L206: plain NMS


def cpu_sized(name: str = 'cascade_mask_rcnn_cnx2_a.py') -> Config:
    cfg = load(name)
    cfg.merge_from_dict({o.split('=')[0]: eval(o.split('=')[1]) for o in head_options('cascade')})
    cfg.model.backbone.init_cfg = None
    return cfg


def build(cfg: Config):
    init_default_scope('mmdet')
    from mmdet.registry import MODELS
    return MODELS.build(cfg.model)


def test_builds_and_computes_three_stage_losses():
    from mmdet.models.losses import GIoULoss
    from mmdet.testing import demo_mm_inputs
    torch.manual_seed(0)
    model = build(cpu_sized())
    assert [type(h).__name__ for h in model.roi_head.bbox_head] == ['ConvFCBBoxHead'] * 3
    for head in model.roi_head.bbox_head:
        assert len(head.shared_convs) == 4 and len(head.shared_fcs) == 1 and isinstance(head.loss_bbox, GIoULoss)
        assert all(isinstance(c.norm, torch.nn.SyncBatchNorm) for c in head.shared_convs)
    batch = demo_mm_inputs(2, [[3, 96, 128]] * 2, num_items=[3, 2], num_classes=80, with_mask=True)
    data = model.data_preprocessor(batch, True)
    losses = model(**data, mode='loss')
    for stage in ('s0', 's1', 's2'):
        for part in ('loss_cls', 'loss_bbox', 'loss_mask'):
            assert torch.isfinite(losses[f'{stage}.{part}']).all(), (stage, part)


def test_layer_decay_as_v1(monkeypatch):
    """lr scale decay_rate ** (L + 1 - layer id), V1's layer_wise ids (object_detection/mmcv_custom/
    layer_decay_optimizer_constructor.py): stem 0.7^7, stage 3 0.7, heads 1 at lr 2e-4 (atto, L = 6)."""
    from mmengine.optim import build_optim_wrapper
    cfg = cpu_sized()
    model = build(cfg)
    wrapper = build_optim_wrapper(model, dict(cfg.optim_wrapper, type='OptimWrapper'))  # AMP refuses a CPU
    lr = {id(p): g['lr'] for g in wrapper.optimizer.param_groups for p in g['params']}
    named = dict(model.named_parameters())
    assert lr[id(named['backbone.downsample_layers.0.0.weight'])] == pytest.approx(2e-4 * 0.7 ** 7)
    assert lr[id(named['backbone.stages.3.0.dwconv.weight'])] == pytest.approx(2e-4 * 0.7)
    assert lr[id(named['roi_head.bbox_head.2.shared_convs.0.conv.weight'])] == pytest.approx(2e-4)


def test_loads_the_mask_rcnn_checkpoint_and_gives_its_backbone(tmp_path, monkeypatch):
    """The config's own init_cfg (the FCMAE zoo name of the Mask R-CNN leaf), from torch.hub's cache in the official
    layout, fills every backbone tensor strictly; a saved Cascade model gives its backbone back to ConvNeXtV2."""
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch'))
    torch.manual_seed(0)
    official = {k: torch.randn_like(v) for k, v in ConvNeXtV2('atto').state_dict().items()
                if not k.startswith(('norm.', 'head.'))}  # the FCMAE release holds the encoder only
    path = cache_path(ZOO['convnextv2_atto.fcmae'].url)
    os.makedirs(osp.dirname(path))
    torch.save({'model': official}, path)
    cfg = cpu_sized()
    cfg.model.backbone.init_cfg = load('mask_rcnn_cnx2_a.py').model.backbone.init_cfg
    model = build(cfg)
    model.init_weights()
    got = model.backbone.state_dict()
    for key, value in official.items():
        assert torch.equal(got[key], value), key
    save_checkpoint(dict(meta=dict(epoch=36), state_dict=weights_to_cpu(get_state_dict(model))),
                    str(tmp_path / 'cascade.pth'))
    target = ConvNeXtV2('atto', out_indices=(0, 1, 2, 3))
    report = load_pretrained(target, str(tmp_path / 'cascade.pth'))
    assert report['format'] == 'ours' and not report['errors']
    assert all(torch.equal(v, got[k]) for k, v in target.state_dict().items())
    assert {k.split('.')[0] for k in report['dropped']} == {'neck', 'rpn_head', 'roi_head'}
