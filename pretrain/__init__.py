"""The upstream stages: FCMAE pre-training and ImageNet fine-tuning. Importing this package registers, in mmengine's
root registries, `FCMAE`, `ImageClassifier`, `TopKAccuracy`, `ImageFolderDataset` and the run-guard hooks."""
from mmengine.registry import MODELS

from . import classifier, data, hooks  # noqa: F401  (fine-tuning model, metric, dataset, hooks register themselves)
from .fcmae import FCMAE

MODELS.register_module(module=FCMAE)

__all__ = ['FCMAE']
