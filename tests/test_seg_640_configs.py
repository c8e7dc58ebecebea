"""seg_configs/upernet_cnx2_{b,l,h}_640_in22k.py: the 640 recipe's values against their sources, written here with
the file and line they came from (ConvNeXt V1's 640 configs, facebookresearch/ConvNeXt@048efce
semantic_segmentation/configs/convnext/; mmseg 1.2.2's ade20k_640x640.py as installed), the 512 recipe kept for the
rest, the multi-scale test at 0.75-1.25 x 2560x640, and the IN-22K fine-tuned release loading strictly."""
import os
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

from backbone import VARIANTS, ConvNeXtV2
from backbone.zoo import ZOO, cache_path
from runtime.seg_eval import build_cfg
from toyruns.stages import head_options

pytestmark = pytest.mark.usefixtures('one_thread')  # conftest.py
ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
SIZES = dict(b='base', l='large', h='huge')
# V1 upernet_convnext_{base,large,xlarge}_640_160k_ade20k_ms.py: drop_path_rate L21, lr L36; V2-H takes V1-XL's
V1_640 = dict(b=(0.4, 1e-4), l=(0.4, 1e-4), h=(0.4, 8e-5))


def load(letter: str) -> Config:
    return Config.fromfile(osp.join(ROOT, 'seg_configs', f'upernet_cnx2_{letter}_640_in22k.py'))


@pytest.mark.parametrize('letter', SIZES)
def test_recipe_values(letter):
    cfg, arch = load(letter), SIZES[letter]
    drop_path, lr = V1_640[letter]
    bb, model = cfg.model.backbone, cfg.model
    assert (bb.type, bb.arch, bb.drop_path_rate, bb.get('with_cp', False)) == ('ConvNeXtV2', arch, drop_path,
                                                                              letter in 'lh')
    # Table 7's IN-22K rows: FCMAE -> IN-22K -> IN-1K fine-tuned weights, the 384 release (no huge at 224)
    assert bb.init_cfg == dict(type='Pretrained', checkpoint=f'convnextv2_{arch}.in22k_384')
    assert ZOO[bb.init_cfg.checkpoint].url.endswith(f'/convnextv2/im22k/convnextv2_{arch}_22k_384_ema.pt')
    assert model.decode_head.in_channels == list(VARIANTS[arch]['dims'])
    assert model.auxiliary_head.in_channels == VARIANTS[arch]['dims'][2]
    # AdamW lr (V1 L36), betas, weight decay 0.05 (L36); stage-wise decay 0.9 (L37-38); num_layers 12 (L39)
    optim = cfg.optim_wrapper
    assert dict(optim.optimizer) == dict(type='AdamW', lr=lr, betas=(0.9, 0.999), weight_decay=0.05)
    assert optim.paramwise_cfg == dict(decay_rate=0.9, decay_type='stage_wise')
    assert optim.constructor == 'ConvNeXtV2LayerDecayConstructor' and optim.type == 'DeviceAmpOptimWrapper'
    # warm-up 1500 iterations from 1e-6, then poly to 0 (V1 L41-45); 160k iterations; 2 x 8 GPUs (L48)
    warm_up, poly = cfg.param_scheduler
    assert (warm_up.type, warm_up.start_factor, warm_up.end) == ('LinearLR', 1e-6, 1500)
    assert (poly.type, poly.power, poly.eta_min, poly.begin, poly.end) == ('PolyLR', 1.0, 0.0, 1500, 160000)
    assert cfg.train_cfg.max_iters == 160000 and cfg.train_dataloader.batch_size == 2
    # crop 640 (V1 L13); mmseg ade20k_640x640.py: RandomResize (2560, 640) ratio 0.5-2.0 (L9-12), crop 640 with
    # cat_max_ratio 0.75 (L13), flip 0.5 (L14), photometric distortion (L15); test Resize (2560, 640) (L20)
    train = [t.type for t in cfg.train_dataloader.dataset.pipeline]
    assert train == ['LoadImageFromFile', 'LoadAnnotations', 'RandomResize', 'RandomCrop', 'RandomFlip',
                     'PhotoMetricDistortion', 'PackSegInputs']
    _, load_ann, resize, crop, flip, _, _ = cfg.train_dataloader.dataset.pipeline
    assert (tuple(resize.scale), tuple(resize.ratio_range), resize.keep_ratio) == ((2560, 640), (0.5, 2.0), True)
    assert (tuple(crop.crop_size), crop.cat_max_ratio, flip.prob, load_ann.reduce_zero_label) == (
        (640, 640), 0.75, 0.5, True)
    for split in ('val', 'test'):
        test = cfg[f'{split}_dataloader'].dataset.pipeline
        assert [(t.type, tuple(t.scale), t.keep_ratio) for t in test if t.type == 'Resize'] == [
            ('Resize', (2560, 640), True)]
    # 640 sliding windows, stride 426 (V1 upernet_convnext_*_640_160k_ade20k_ss.py L33), inputs padded to 640
    assert (model.test_cfg.mode, tuple(model.test_cfg.crop_size), tuple(model.test_cfg.stride)) == (
        'slide', (640, 640), (426, 426))
    assert tuple(model.data_preprocessor.size) == (640, 640)
    # the rest is the 512 recipe: UPerHead 512 channels, FCN auxiliary head 256 at weight 0.4, 150 classes
    head, aux = model.decode_head, model.auxiliary_head
    assert (head.channels, aux.channels, aux.loss_decode.loss_weight, head.num_classes) == (512, 256, 0.4, 150)


def test_multi_scale_test_at_640():
    """The paper's scales 0.75-1.25 (A.4) times the 640 test size 2560x640, hand-computed."""
    cfg = build_cfg(osp.join(ROOT, 'seg_configs', 'upernet_cnx2_b_640_in22k.py'), 'x.pth', multi_scale=True,
                    cfg_options={})
    resizes = cfg.test_dataloader.dataset.pipeline[1]['transforms'][0]
    assert [tuple(t['scale']) for t in resizes] == [(1920, 480), (2240, 560), (2560, 640), (2880, 720), (3200, 800)]
    assert cfg.model.module.test_cfg.stride == (426, 426)


def test_builds_runs_and_loads_an_in22k_release_strictly(tmp_path, monkeypatch):
    """At CPU size (nano, the smallest size with an IN-22K release; CPU-sized heads): the release's layout
    (`model`, `model_ema`, IN-1K head) through the zoo name and torch.hub's cache fills every backbone tensor."""
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch'))
    torch.manual_seed(0)
    release = {k: torch.randn_like(v) for k, v in ConvNeXtV2('nano', num_classes=1000).state_dict().items()}
    path = cache_path(ZOO['convnextv2_nano.in22k_384'].url)
    os.makedirs(osp.dirname(path))
    torch.save({'model': release, 'model_ema': release}, path)
    cfg = load('b')
    cfg.merge_from_dict({o.split('=')[0]: int(o.split('=')[1]) for o in head_options('seg')})
    widths = list(VARIANTS['nano']['dims'])
    cfg.merge_from_dict({'model.backbone.arch': 'nano', 'model.decode_head.in_channels': widths,
                         'model.backbone.init_cfg.checkpoint': 'convnextv2_nano.in22k_384',
                         'model.auxiliary_head.in_channels': widths[2]})
    init_default_scope('mmseg')
    from mmseg.registry import MODELS
    model = MODELS.build(cfg.model)
    model.init_weights()
    got = model.backbone.state_dict()
    for key, value in release.items():
        if not key.startswith(('head.', 'norm.')):
            assert torch.equal(got[key], value), key
    with torch.no_grad():
        logits = model.eval()(torch.zeros(1, 3, 64, 96), mode='tensor')
    assert tuple(logits.shape) == (1, 150, 16, 24)
