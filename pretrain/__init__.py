"""The upstream stages: FCMAE pre-training and ImageNet fine-tuning. Importing this package registers, in mmengine's
root registries, `FCMAE`, `ImageClassifier`, `TopKAccuracy`, `ImageFolderDataset`, `UnlabeledImageDataset`,
`FCMAEOptimWrapperConstructor`, the EMA / validation loop of fine-tuning and the run-guard hooks."""
from mmengine.registry import MODELS

from . import classifier, data, hooks, optim  # noqa: F401  (models, metric, datasets, hooks, constructor register)
from .fcmae import FCMAE

MODELS.register_module(module=FCMAE)

__all__ = ['FCMAE']
