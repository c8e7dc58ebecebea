"""Semantic segmentation through mmseg's own `MMSegInferencer` and `SegLocalVisualizer`: a colour overlay and a
label PNG (class index per pixel, the image's size) per input, and a JSON of the classes each image shows."""
from pathlib import Path

import numpy as np
from PIL import Image

from .common import mm_inferencer, output_path, write_json

OPACITY = 0.8  # MMSegInferencer.visualize's default


class Segmentation:
    """One MMSegInferencer for the run; each image is predicted, its label map saved and its overlay drawn."""

    def __init__(self, cfg, checkpoint: str, device: str, out_dir: Path, **_):
        from mmseg.apis import MMSegInferencer
        from mmseg.registry import DATASETS
        self.inferencer, self.classes = mm_inferencer(MMSegInferencer, DATASETS, cfg, checkpoint, device,
                                                         lambda m: m.decode_head.num_classes)
        model = self.inferencer.model
        vis = self.inferencer.visualizer  # as MMSegInferencer.visualize sets it up (its __init__ sets Cityscapes')
        vis.set_dataset_meta(classes=self.classes, palette=model.dataset_meta.get('palette'))
        vis.alpha = OPACITY
        self.out_dir, self.records = Path(out_dir), []

    def __call__(self, rgb: np.ndarray, item) -> dict:
        pred = self.inferencer(rgb[..., ::-1].copy(), return_datasamples=True)  # mm inputs: BGR; one sample back
        label = pred.pred_sem_seg.data[0].cpu().numpy()
        dtype = np.uint8 if len(self.classes) <= 256 else np.uint16
        label_png = output_path(self.out_dir, 'labels', item.name)
        Image.fromarray(label.astype(dtype)).save(label_png)
        overlay = output_path(self.out_dir, 'vis', item.name)
        self.inferencer.visualizer.add_datasample(item.name, rgb, pred, draw_gt=False, draw_pred=True,
                                                  out_file=str(overlay))
        ids, counts = np.unique(label, return_counts=True)
        shares = {self.classes[i]: round(c / label.size, 4) for i, c in sorted(zip(ids.tolist(), counts.tolist()),
                                                                            key=lambda t: -t[1])}
        self.records.append(dict(file_name=str(item.path), label_png=str(label_png), overlay=str(overlay),
                                 height=label.shape[0], width=label.shape[1], class_shares=shares))
        top = ', '.join(f'{k} {v:.0%}' for k, v in list(shares.items())[:3])
        return dict(file=str(item.path), drawn=str(overlay), line=f'{len(shares)} classes: {top}')

    def finish(self) -> list[str]:
        return [str(write_json(self.out_dir / 'predictions.json', self.records))]
