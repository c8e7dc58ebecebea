"""Deterministic toy datasets in the real on-disk layouts (ImageNet folder, COCO instances, ADE20K), for the demo
and the tests; `python tools/make_toy_data.py ROOT` writes all three."""
from .generate import (DATASETS, MARKER, PROFILES, SHAPES, ade20k, coco_instances, imagenet_folder, summary_line,
                       unlabeled, write_all)

__all__ = ['DATASETS', 'MARKER', 'PROFILES', 'SHAPES', 'ade20k', 'coco_instances', 'imagenet_folder',
           'summary_line', 'unlabeled', 'write_all']
