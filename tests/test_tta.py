"""tools/test.py --tta (and tools/dist_test.sh, which runs it) builds the multi-scale test from the run's tta_scales,
tta_flip and tta_mode through the same function as tools/seg_eval.py: options given on the command line reach the
pipeline and the model, not only the values the config file was parsed with."""
import os.path as osp

import cv2
import numpy as np
import pytest
from mmcv.transforms import Compose
from mmengine.registry import init_default_scope

import runtime.launch
from tools import test as test_tool

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG = osp.join(ROOT, 'seg_configs', 'upernet_cnx2_a.py')


class FakeRunner:
    """Stands in for mmengine's Runner: the test inspects the config the Runner would be built from."""
    rank = 0

    def test(self):
        return {'mIoU': 0.}


@pytest.fixture
def built(tmp_path, monkeypatch):
    """tools/test.py main(args) -> the config it builds its Runner from."""
    cfgs = []
    monkeypatch.setattr(runtime.launch, 'build_runner', lambda cfg: cfgs.append(cfg) or FakeRunner())
    ckpt = tmp_path / 'x.pth'
    ckpt.write_bytes(b'')  # tools/test.py checks that the file exists; the fake runner never reads it

    def run(*args):
        test_tool.main([CONFIG, str(ckpt), '--work-dir', str(tmp_path), *args])
        return cfgs[-1]
    return run


def test_tta_options_reach_tools_test(built, tmp_path):
    cfg = built('--tta', '--cfg-options', 'tta_flip=True', 'tta_mode=whole', 'tta_scales=[0.5,1.0]')
    tta = cfg.test_dataloader.dataset.pipeline[1]
    assert tta.type == 'TestTimeAug'
    # tta_scales × the single-scale test Resize (2048, 512), keep_ratio as that Resize
    assert [(t['scale'], t['keep_ratio']) for t in tta.transforms[0]] == [((1024, 256), True), ((2048, 512), True)]
    assert [(t['type'], t['prob']) for t in tta.transforms[1]] == [('RandomFlip', 0.), ('RandomFlip', 1.)]
    assert cfg.model.type == 'SegTTAModel' and cfg.model.module.test_cfg.mode == 'whole'
    # the built pipeline on an image: each scale unflipped and flipped (mmcv's TestTimeAug, a 4:1 image)
    init_default_scope('mmseg')
    img, seg = tmp_path / 'img.jpg', tmp_path / 'seg.png'
    cv2.imwrite(str(img), np.full((64, 256, 3), 128, np.uint8))
    cv2.imwrite(str(seg), np.ones((64, 256), np.uint8))
    out = Compose(cfg.test_dataloader.dataset.pipeline)(dict(img_path=str(img), seg_map_path=str(seg),
                                                             reduce_zero_label=True, seg_fields=[]))
    views = sorted((s.img_shape, s.flip) for s in out['data_samples'])
    assert views == [((256, 1024), False), ((256, 1024), True), ((512, 2048), False), ((512, 2048), True)]


def test_tta_defaults_are_the_papers_protocol(built):
    cfg = built('--tta')
    tta = cfg.test_dataloader.dataset.pipeline[1]
    assert [t['scale'] for t in tta.transforms[0]] == [(1536, 384), (1792, 448), (2048, 512), (2304, 576), (2560, 640)]
    assert [t['prob'] for t in tta.transforms[1]] == [0.]
    assert cfg.model.module.test_cfg.mode == 'slide'


@pytest.mark.parametrize('option, message', [('tta_mode=sliding', "tta_mode='sliding'"),
                                             ('tta_scales=[]', 'tta_scales=')])
def test_bad_tta_values_are_named(built, option, message):
    with pytest.raises(ValueError, match=message):
        built('--tta', '--cfg-options', option)
