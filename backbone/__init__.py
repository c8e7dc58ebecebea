"""The ConvNeXt V2 family and its weights. Importing this package registers, once, in mmengine's root registries
(which mmdet, mmseg and the pretrain configs all see): the `ConvNeXtV2` model, the layer-decay constructor and the exact-resume hook."""
from mmengine.registry import HOOKS, MODELS, OPTIM_WRAPPER_CONSTRUCTORS

from .convnextv2 import GRN, VARIANTS, ConvNeXtV2, LayerNorm2d, arch_settings
from .layer_decay import ConvNeXtV2LayerDecayConstructor, layer_id
from . import checkpoint  # noqa: F401  (makes torch.load safe for mmengine resume; see checkpoint.py)
from . import atomic  # noqa: F401  (importing makes mmengine's checkpoint writes atomic)
from .resume import ResumeStateHook, epoch_worker_init_fn  # noqa: F401  (exact resume; registers the worker seeding)

MODELS.register_module(module=ConvNeXtV2)
OPTIM_WRAPPER_CONSTRUCTORS.register_module(module=ConvNeXtV2LayerDecayConstructor)
HOOKS.register_module(module=ResumeStateHook)

__all__ = ['ConvNeXtV2', 'GRN', 'LayerNorm2d', 'VARIANTS', 'arch_settings', 'ConvNeXtV2LayerDecayConstructor',
           'layer_id', 'ResumeStateHook']
