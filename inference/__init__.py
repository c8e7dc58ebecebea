"""Inference on images for every stage: Mask R-CNN through mmdet's DetInferencer, UPerNet through mmseg's
MMSegInferencer (both drawn by the mm visualizers), top-k classification, FCMAE reconstruction grids.
`tools/infer.py` is the command line; `run` is the one call behind it."""
from .api import TASKS, resolve_device, run, task_of
from .inputs import UnreadableImage, collect_images, read_rgb

__all__ = ['TASKS', 'UnreadableImage', 'collect_images', 'read_rgb', 'resolve_device', 'run', 'task_of']
