"""ImageNet-style classification: the top-k classes with names and probabilities per image, printed and in a JSON.
The weights go through the suite's strict loader, so ours and every official or timm format work."""
import copy
from pathlib import Path

import numpy as np
import torch
from mmengine.logging import print_log
from mmengine.registry import DATASETS, MODELS, init_default_scope
from PIL import Image

from backbone.checkpoint import CheckpointError, convert, load_pretrained
from pretrain.data import build_transform

from .common import read_checkpoint, write_json


def class_names(ckpt: dict, cfg, num_classes: int, path: str) -> tuple[list, str]:
    """(names, where they came from): the checkpoint's meta.dataset_meta (what mmengine's Runner saves), else the
    config's test dataset (its class folders), else ImageNet's for 1000 / 21841 outputs (official checkpoints)."""
    classes = list(ckpt.get('meta', {}).get('dataset_meta', {}).get('classes') or ())
    source = f'{path} meta.dataset_meta'
    if not classes:
        try:
            classes, source = list(DATASETS.build(copy.deepcopy(cfg.test_dataloader.dataset)).classes), 'test dataset'
        except (FileNotFoundError, ValueError, KeyError, AttributeError):  # no dataset on this machine
            classes = []
    if not classes and num_classes in (1000, 21841):
        from timm.data import ImageNetInfo
        info = ImageNetInfo('imagenet-1k' if num_classes == 1000 else 'imagenet-21k')
        classes, source = [info.index_to_description(i) for i in range(num_classes)], 'timm ImageNetInfo'
    if not classes:
        print_log(f'{path}: no class names in its meta or the config\'s dataset; class indices instead',
                  logger='current', level=30)
        classes, source = [str(i) for i in range(num_classes)], 'indices'
    if len(classes) != num_classes:
        raise ValueError(f'{path}: {len(classes)} class names ({source}) for a head of {num_classes} classes')
    return classes, source


class Classification:
    """The config's ImageClassifier with the checkpoint's head; each image through the config's test transform."""

    def __init__(self, cfg, checkpoint: str, device: str, out_dir: Path, topk: int = 5, **_):
        init_default_scope(cfg.get('default_scope', 'mmengine'))
        ckpt = read_checkpoint(checkpoint)
        model_cfg = copy.deepcopy(cfg.model)
        model_cfg.backbone.pop('init_cfg', None)
        head = convert(ckpt)[0].get('head.weight')
        if head is not None and head.shape[0] != model_cfg.backbone.num_classes:  # e.g. the demo's 4 toy classes
            print_log(f'{checkpoint}: a head of {head.shape[0]} classes; model.backbone.num_classes '
                      f'{model_cfg.backbone.num_classes} -> {head.shape[0]}', logger='current')
            model_cfg.backbone.num_classes = head.shape[0]
        self.model = MODELS.build(model_cfg)
        report = load_pretrained(self.model.backbone, ckpt)
        if report['absent']:  # the loader lets a head be absent (fine-tuning starts without one); top-k needs it
            raise CheckpointError(f'{checkpoint} ({report["format"]}): no weights of the config\'s shape for '
                                  f'{report["absent"][:4]} (model.backbone.num_classes={self.model.num_classes}); '
                                  'top-k needs a fine-tuned checkpoint with its head, and its number of classes')
        self.model.to(device).eval()
        self.classes, self.source = class_names(ckpt, cfg, self.model.num_classes, checkpoint)
        self.transform = build_transform(cfg.test_dataloader.dataset.pipeline)
        self.device, self.topk, self.out_dir, self.records = device, min(topk, len(self.classes)), Path(out_dir), []

    @torch.no_grad()
    def __call__(self, rgb: np.ndarray, item) -> dict:
        x = self.transform(Image.fromarray(rgb))[None].to(self.device)
        probs = self.model(x, mode='tensor').float().softmax(-1)[0].cpu()
        scores, labels = probs.topk(self.topk)
        top = [dict(label=i, name=self.classes[i], score=s) for s, i in zip(scores.tolist(), labels.tolist())]
        self.records.append(dict(file_name=str(item.path), topk=top))
        return dict(file=str(item.path), line=', '.join(f'{t["name"]} {t["score"]:.3f}' for t in top))

    def finish(self) -> list[str]:
        return [str(write_json(self.out_dir / 'predictions.json',
                               dict(classes_from=self.source, topk=self.topk, predictions=self.records)))]
