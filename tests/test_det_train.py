"""Mask R-CNN + ConvNeXt V2-Atto on generated COCO data through the user's tools: tools/train.py trains a couple of
iterations and evaluates, tools/test.py writes bbox/segm AP (checked against pycocotools run here on the dumped
predictions; near 0 after two iterations, so the metric itself is checked on known non-zero APs in
tests/test_coco_metric.py); a missing backbone checkpoint stops before anything is built."""
import json
import os.path as osp
import pickle

import numpy as np
import pytest
import torch

from backbone import ConvNeXtV2
from runtime import enable_tta, enable_visualization
from tools import test as test_tool
from tools import train as train_tool
from toydata import coco_instances

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG = osp.join(ROOT, 'det_configs', 'mask_rcnn_cnx2_a.py')
CLASSES = ('circle', 'square', 'triangle')


pytestmark = pytest.mark.usefixtures('one_thread')  # conftest.py


def atto_checkpoint(path) -> str:
    """An atto backbone in our mmengine format (the loader's `backbone.` prefix case)."""
    torch.manual_seed(0)
    sd = {f'backbone.{k}': v for k, v in ConvNeXtV2('atto').state_dict().items()}
    torch.save(dict(state_dict=sd, meta=dict(epoch=1)), path)
    return str(path)


def pycocotools_ap(ann_file: str, dumped: list) -> dict:
    """bbox / segm AP of mmdet's dumped predictions, computed here with pycocotools alone."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    gt = COCO(ann_file)
    cat_ids = gt.getCatIds(catNms=list(CLASSES))
    boxes, segms = [], []
    for res in dumped:
        pred = res['pred_instances']
        for box, score, label, rle in zip(pred['bboxes'].tolist(), pred['scores'].tolist(), pred['labels'].tolist(),
                                          pred['masks']):
            x1, y1, x2, y2 = box
            item = dict(image_id=res['img_id'], category_id=cat_ids[label], score=score)
            boxes.append(dict(item, bbox=[x1, y1, x2 - x1, y2 - y1]))
            rle = dict(rle, counts=rle['counts'].decode() if isinstance(rle['counts'], bytes) else rle['counts'])
            segms.append(dict(item, segmentation=rle))
    ap = {}
    for kind, results in (('bbox', boxes), ('segm', segms)):
        if not results:
            ap[kind] = 0.
            continue
        evaluator = COCOeval(gt, gt.loadRes(results), kind)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
        ap[kind] = float(evaluator.stats[0])
    return ap


def test_train_then_test_gives_coco_ap(tmp_path, runs):
    data = coco_instances(tmp_path / 'coco', train_images=4, val_images=2, size=(128, 96), classes=CLASSES)
    work = tmp_path / 'work'
    opts = runs.det_toy_options(tmp_path / 'coco', val=False)  # tools/test.py evaluates
    runner = train_tool.main([CONFIG, '--work-dir', str(work), '--pretrained', atto_checkpoint(tmp_path / 'a.pth'),
                              '--cfg-options', *opts])
    assert runner.iter == 2 and (work / 'epoch_1.pth').is_file()  # 4 images / batch 2
    result = test_tool.main([CONFIG, str(work / 'epoch_1.pth'), '--work-dir', str(work), '--out',
                             str(tmp_path / 'preds.pkl'), '--cfg-options', *opts])
    saved = json.loads((work / 'test_results.json').read_text())
    assert saved == result and (saved['task'], saved['tta'], saved['checkpoint']) == ('det', False,
                                                                                     str(work / 'epoch_1.pth'))
    metrics = saved['metrics']
    for kind in ('bbox', 'segm'):
        for key in ('mAP', 'mAP_50', 'mAP_75', 'mAP_s', 'mAP_m', 'mAP_l'):
            assert isinstance(metrics[f'coco/{kind}_{key}'], float)
    with open(tmp_path / 'preds.pkl', 'rb') as f:
        dumped = pickle.load(f)
    assert len(dumped) == 2
    ap = pycocotools_ap(data['val']['ann_file'], dumped)
    for kind in ('bbox', 'segm'):
        assert metrics[f'coco/{kind}_mAP'] >= 0
        assert metrics[f'coco/{kind}_mAP'] == pytest.approx(np.round(max(ap[kind], 0), 3), abs=1e-9)


def test_missing_checkpoint_fails_before_training(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a relative ckpts/fcmae_cnx2_a.pth cannot exist here
    ckpt = 'model.backbone.init_cfg.checkpoint=ckpts/fcmae_cnx2_a.pth'  # the leaf's default is a zoo name
    with pytest.raises(FileNotFoundError, match=r"model\.backbone\.init_cfg\.checkpoint: 'ckpts/fcmae_cnx2_a\.pth' "
                                                r'does not exist'):
        train_tool.main([CONFIG, '--work-dir', str(tmp_path / 'work'), '--cfg-options', ckpt])
    with pytest.raises(FileNotFoundError, match=r'model\.backbone\.init_cfg\.checkpoint: .*nowhere\.pth'):
        train_tool.main([CONFIG, '--work-dir', str(tmp_path / 'work'), '--pretrained', 'nowhere.pth'])
    assert not (tmp_path / 'work').exists()  # no runner was built, no log written


def test_show_dir_and_tta_follow_mmdet(tmp_path):
    """--show-dir turns on mmdet's DetVisualizationHook; --tta wraps the model in DetTTAModel over flipped copies."""
    from mmengine.config import Config
    cfg = Config.fromfile(CONFIG)
    enable_visualization(cfg, 'det', str(tmp_path / 'show'))
    hook = cfg.default_hooks.visualization
    assert (hook.type, hook.draw, hook.test_out_dir) == ('DetVisualizationHook', True, str(tmp_path / 'show'))
    enable_tta(cfg, 'det')
    assert (cfg.model.type, cfg.model.module.type) == ('DetTTAModel', 'MaskRCNN')
    pipeline = cfg.test_dataloader.dataset.pipeline
    assert [t.type for t in pipeline[:-1]] == ['LoadImageFromFile', 'Resize', 'LoadAnnotations']
    assert [t['prob'] for t in pipeline[-1].transforms[0]] == [1., 0.]  # flipped and original
    with pytest.raises(ValueError, match='no visualisation hook for task'):
        enable_visualization(cfg, 'cls', str(tmp_path))
