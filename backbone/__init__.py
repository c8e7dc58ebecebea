"""The ConvNeXt V2 family and its weights. Importing this package registers, once, in mmengine's root registries
(which mmdet, mmseg and the pretrain configs all see) the `ConvNeXtV2` model and the layer-decay constructor, and
changes nothing else (checkpoint writing, resume and the runner are the `runtime` package's)."""
from mmengine.registry import MODELS, OPTIM_WRAPPER_CONSTRUCTORS

from .convnextv2 import GRN, VARIANTS, ConvNeXtV2, LayerNorm2d, arch_settings
from .layer_decay import ConvNeXtV2LayerDecayConstructor, layer_id

MODELS.register_module(module=ConvNeXtV2)
OPTIM_WRAPPER_CONSTRUCTORS.register_module(module=ConvNeXtV2LayerDecayConstructor)

__all__ = ['ConvNeXtV2', 'GRN', 'LayerNorm2d', 'VARIANTS', 'arch_settings', 'ConvNeXtV2LayerDecayConstructor',
           'layer_id']
