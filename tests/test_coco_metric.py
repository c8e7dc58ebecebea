"""The COCO AP that tools/test.py reports (the det_configs' test_evaluator: mmdet's CocoMetric) on predictions with a
known AP: the ground truth itself (100) and a hand-computed partial case, equal to pycocotools run directly."""
import os.path as osp

import numpy as np
import pytest
import torch
from mmdet.registry import METRICS
from mmengine.config import Config
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from toydata import coco_instances

CONFIG = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'det_configs', 'mask_rcnn_cnx2_a.py')
CLASSES = ('circle', 'square', 'triangle')
RECALL_STEPS = np.linspace(0, 1, 101)  # COCO's 101 recall thresholds


@pytest.fixture(scope='module')
def gt(tmp_path_factory):
    """The toy val split with more objects per image: pycocotools' view of the json and its annotations."""
    data = coco_instances(tmp_path_factory.mktemp('coco'), train_images=1, val_images=6, classes=CLASSES,
                          max_objects=5, seed=0)
    api = COCO(data['val']['ann_file'])
    return data['val']['ann_file'], api, api.loadAnns(sorted(api.anns))


def predictions(api, anns: list, keep: dict, false_positive: bool) -> list:
    """Per image: a dict of (x, y, w, h) boxes, scores, category ids and binary masks. The first keep[c] objects of
    category c are predicted exactly (scores falling), the others missed; false_positive adds, per category, one
    box with the top score where nothing of that category is (an empty corner of the first image)."""
    seen, out = {}, {i: dict(boxes=[], scores=[], cats=[], masks=[]) for i in sorted(api.imgs)}
    for a in anns:
        seen[a['category_id']] = seen.get(a['category_id'], 0) + 1
        if seen[a['category_id']] <= keep[a['category_id']]:
            _add(out[a['image_id']], a['bbox'], 0.9 - 0.01 * len(out[a['image_id']]['scores']), a['category_id'],
                 api.annToMask(a))
    if false_positive:
        first = min(api.imgs)
        info = api.imgs[first]
        for c in keep:
            corner = np.zeros((info['height'], info['width']), np.uint8)
            corner[:2, :2] = 1
            _add(out[first], [0., 0., 2., 2.], 0.95, c, corner)
    return [dict(img_id=i, **v) for i, v in out.items()]


def _add(pred: dict, box, score: float, cat: int, mask):
    for key, value in zip(('boxes', 'scores', 'cats', 'masks'), (box, score, cat, mask)):
        pred[key].append(value)


def mmdet_metric(ann_file: str, api, preds: list) -> dict:
    """The config's test_evaluator as tools/test.py builds it, fed as Mask R-CNN's predictions are: x1y1x2y2 boxes,
    label indices, (N, H, W) mask tensors."""
    cfg = Config.fromfile(CONFIG).test_evaluator
    metric = METRICS.build(dict(cfg, ann_file=ann_file))
    metric.dataset_meta = dict(classes=CLASSES)
    cat_ids = api.getCatIds(catNms=list(CLASSES))
    samples = []
    for p in preds:
        info = api.imgs[p['img_id']]
        boxes = torch.tensor([[x, y, x + w, y + h] for x, y, w, h in p['boxes']], dtype=torch.float32).reshape(-1, 4)
        masks = torch.from_numpy(np.stack(p['masks'])).bool() if p['masks'] else torch.zeros(0, info['height'],
                                                                                               info['width']).bool()
        pred = dict(bboxes=boxes, scores=torch.tensor(p['scores']), masks=masks,
                    labels=torch.tensor([cat_ids.index(c) for c in p['cats']], dtype=torch.long))
        samples.append(dict(img_id=p['img_id'], ori_shape=(info['height'], info['width']), pred_instances=pred))
    metric.process({}, samples)
    return metric.compute_metrics(metric.results)


def pycocotools_ap(api, preds: list) -> dict:
    """stats[0] (AP at IoU .50:.95, all areas, 100 detections) of pycocotools alone on the same predictions."""
    ap = {}
    for kind in ('bbox', 'segm'):
        results = []
        for p in preds:
            for box, score, cat, mask in zip(p['boxes'], p['scores'], p['cats'], p['masks']):
                rle = mask_utils.encode(np.asfortranarray(mask))
                rle['counts'] = rle['counts'].decode()
                results.append(dict(image_id=p['img_id'], category_id=cat, score=score, bbox=list(box),
                                    segmentation=rle))
        evaluator = COCOeval(api, api.loadRes(results), kind)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
        ap[kind] = float(evaluator.stats[0])
    return ap


def test_ground_truth_as_predictions_gives_ap_100(gt):
    ann_file, api, anns = gt
    preds = predictions(api, anns, keep={c: 10 ** 6 for c in api.getCatIds()}, false_positive=False)
    metrics = mmdet_metric(ann_file, api, preds)
    assert pycocotools_ap(api, preds) == dict(bbox=1., segm=1.)
    assert metrics['bbox_mAP'] == metrics['segm_mAP'] == metrics['bbox_mAP_50'] == 1.


def test_partial_recall_after_a_false_positive_gives_the_hand_ap(gt):
    """Per category: a false positive ranked first, then k of n objects found exactly: precision j/(j+1) at recall
    j/n, interpolated to k/(k+1) up to recall k/n and 0 beyond; AP = k/(k+1) · #{recall steps ≤ k/n} / 101, at every
    IoU threshold; mAP averages the categories."""
    ann_file, api, anns = gt
    counts = {c: len(api.getAnnIds(catIds=[c])) for c in api.getCatIds()}
    assert min(counts.values()) >= 3, counts  # a partial recall needs a few objects per category
    keep = {c: n // 2 for c, n in counts.items()}
    expected = np.mean([k / (k + 1) * np.sum(RECALL_STEPS <= k / counts[c] + 1e-12) / 101 for c, k in keep.items()])
    assert 0.2 < expected < 0.5
    preds = predictions(api, anns, keep, false_positive=True)
    ap = pycocotools_ap(api, preds)
    assert ap['bbox'] == pytest.approx(expected, abs=1e-12) and ap['segm'] == pytest.approx(expected, abs=1e-12)
    metrics = mmdet_metric(ann_file, api, preds)
    assert metrics['bbox_mAP'] == metrics['segm_mAP'] == round(expected, 3)
