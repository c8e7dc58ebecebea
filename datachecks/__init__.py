"""Data checks run before training: COCO annotation files and segmentation label maps read once, with mmdet's and
mmseg's own parsing, so bad data is a named error or a counted skip instead of a crash mid-training."""
from .checks import check, lazy_dataset
from .coco import ANN_KEYS, CAT_KEYS, IMAGE_KEYS, MASK_KEYS, TOP_KEYS
from .found import DataError
from .segmaps import valid_values

__all__ = ['ANN_KEYS', 'CAT_KEYS', 'IMAGE_KEYS', 'MASK_KEYS', 'TOP_KEYS', 'DataError', 'check', 'lazy_dataset',
           'valid_values']
