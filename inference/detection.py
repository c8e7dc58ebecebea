"""Detection / instance segmentation through mmdet's own `DetInferencer` and `DetLocalVisualizer`: the drawn image
(boxes, masks, class names) per input and one COCO results JSON (bbox xywh, score, category, RLE mask)."""
import json
import os.path as osp
from pathlib import Path

import numpy as np
from mmengine.logging import print_log

from .common import mm_inferencer, output_path, write_json


def _num_classes(model) -> int:
    head = model.roi_head.bbox_head if hasattr(model, 'roi_head') else model.bbox_head  # two-stage or one-stage
    return head.num_classes


def coco_ids(cfg, classes: list) -> tuple[list, dict]:
    """Category id per class and image id per file name from the config's test annotation file when it is on disk
    (so the JSON scores against it with pycocotools); else ids 1..K and running image ids."""
    ds = cfg.test_dataloader.dataset
    ann = osp.join(ds.get('data_root') or '', ds.get('ann_file') or '')
    if not osp.isfile(ann):
        return list(range(1, len(classes) + 1)), {}
    with open(ann) as f:
        coco = json.load(f)
    by_name = {c['name']: c['id'] for c in coco.get('categories', [])}
    if set(classes) - set(by_name):
        print_log(f'{ann}: no category for {sorted(set(classes) - set(by_name))}; category ids 1..K',
                  logger='current', level=30)
        return list(range(1, len(classes) + 1)), {}
    return [by_name[c] for c in classes], {im['file_name']: im['id'] for im in coco.get('images', [])}


def coco_records(pred, file_name: str, image_id: int, classes: list, cat_ids: list) -> list:
    """COCO results format, one dict per instance, as mmdet's CocoMetric dumps them (xyxy -> xywh, RLE masks)."""
    from pycocotools import mask as mask_utils
    inst = pred.pred_instances.cpu().numpy()
    masks = inst.masks if 'masks' in inst else [None] * len(inst)
    records = []
    for (x1, y1, x2, y2), score, label, mask in zip(inst.bboxes.tolist(), inst.scores.tolist(),
                                                    inst.labels.tolist(), masks):
        rec = dict(image_id=image_id, file_name=file_name, bbox=[x1, y1, x2 - x1, y2 - y1], score=score,
                   category_id=cat_ids[label], category_name=classes[label])
        if mask is not None:
            rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
            rec['segmentation'] = dict(size=[int(s) for s in rle['size']], counts=rle['counts'].decode('ascii'))
        records.append(rec)
    return records


class Detection:
    """One DetInferencer for the run; each image is predicted, drawn by the inferencer's visualizer and recorded."""

    def __init__(self, cfg, checkpoint: str, device: str, out_dir: Path, score_thr: float = 0.3, **_):
        from mmdet.apis import DetInferencer
        from mmdet.registry import DATASETS
        self.inferencer, self.classes = mm_inferencer(DetInferencer, DATASETS, cfg, checkpoint, device,
                                                         _num_classes)
        model = self.inferencer.model
        self.inferencer.visualizer.dataset_meta = model.dataset_meta
        self.cat_ids, self.image_ids = coco_ids(cfg, self.classes)
        self.next_id = max(self.image_ids.values(), default=0) + 1
        self.out_dir, self.score_thr, self.records = Path(out_dir), score_thr, []

    def __call__(self, rgb: np.ndarray, item) -> dict:
        pred = self.inferencer(rgb[..., ::-1].copy(), return_datasamples=True)['predictions'][0]  # mm inputs: BGR
        drawn = output_path(self.out_dir, 'vis', item.name)
        self.inferencer.visualizer.add_datasample(item.name, rgb, pred, draw_gt=False, pred_score_thr=self.score_thr,
                                                  out_file=str(drawn))
        image_id = self.image_ids.pop(item.path.name, None)  # each annotation-file id once
        if image_id is None:  # a file the annotation file does not list: the next free id
            image_id, self.next_id = self.next_id, self.next_id + 1
        found = coco_records(pred, str(item.path), image_id, self.classes, self.cat_ids)
        self.records += found
        shown = sum(r['score'] >= self.score_thr for r in found)
        return dict(file=str(item.path), drawn=str(drawn), line=f'{len(found)} instances, {shown} drawn '
                    f'(score >= {self.score_thr})')

    def finish(self) -> list[str]:
        return [str(write_json(self.out_dir / 'predictions.json', self.records))]
