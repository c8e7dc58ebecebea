"""Layer-wise learning-rate decay for ConvNeXt V2 (docs/RECIPES.md): one constructor for classification, detection and
segmentation, with GRN γ/β, biases and 1-D tensors exempt from weight decay."""
import torch.nn as nn
from mmengine.logging import print_log
from mmengine.optim import DefaultOptimWrapperConstructor

from .convnextv2 import ConvNeXtV2

RULES = ('layer_wise', 'stage_wise', 'single', 'group')


def default_num_layers(rule: str, depths) -> int:
    """`single` counts blocks; `group` is 12 (B/L recipe); det/seg use 6 for ≤9 blocks in stage 2, else 12."""
    if rule == 'single':
        return sum(depths)
    if rule == 'group':
        return 12
    return 6 if depths[2] <= 9 else 12


def layer_id(name: str, rule: str, depths, num_layers: int) -> int:
    """Layer id of a backbone parameter name (without prefix); scale = decay^(num_layers + 1 - id)."""
    parts = name.split('.')
    if parts[0] not in ('downsample_layers', 'stages'):
        return num_layers + 1  # final / output norms, head
    stage = int(parts[1])
    if rule == 'single':
        first = sum(depths[:stage])
        return first + 1 if parts[0] == 'downsample_layers' else first + int(parts[2]) + 1
    if rule == 'stage_wise':
        return 0 if parts[0] == 'downsample_layers' else stage + 1
    # layer_wise (det/seg) and group (B/L classification) share one mapping
    if parts[0] == 'downsample_layers':
        return (0, 2, 3, num_layers)[stage]
    return (1, 2, 3 + int(parts[2]) // 3, num_layers)[stage]


def no_weight_decay(name: str, param: nn.Parameter) -> bool:
    """1-D tensors, biases and GRN γ/β (4-D in the official layout, so a shape rule alone misses them)."""
    return param.ndim <= 1 or name.endswith(('.bias', 'grn.gamma', 'grn.beta'))


def find_convnext(module: nn.Module):
    """(prefix, ConvNeXtV2 submodule) of a model: '' for the backbone itself, 'backbone.' or 'encoder.' otherwise."""
    for name, sub in module.named_modules():
        if isinstance(sub, ConvNeXtV2):
            return (name + '.' if name else ''), sub
    raise TypeError(f'ConvNeXtV2LayerDecayConstructor needs a model containing a ConvNeXtV2; got '
                    f'{type(module).__name__}')


class ConvNeXtV2LayerDecayConstructor(DefaultOptimWrapperConstructor):
    """paramwise_cfg: decay_rate, decay_type (layer_wise | stage_wise | single | group), num_layers (default from
    the model's depths). Parameters outside the backbone (neck, heads, decoder) get layer id num_layers + 1."""

    def add_params(self, params: list, module: nn.Module, **kwargs) -> None:
        cfg = self.paramwise_cfg
        rule, decay_rate = cfg.get('decay_type', 'layer_wise'), cfg.get('decay_rate', 1.0)
        if rule not in RULES:
            raise ValueError(f'paramwise_cfg.decay_type={rule!r}; expected one of {RULES}')
        prefix, convnext = find_convnext(module)
        num_layers = cfg.get('num_layers') or default_num_layers(rule, convnext.depths)
        groups = {}
        for name, param in module.named_parameters():
            if not param.requires_grad:
                continue
            inside = name.startswith(prefix)
            lid = layer_id(name[len(prefix):], rule, convnext.depths, num_layers) if inside else num_layers + 1
            no_wd = no_weight_decay(name, param)
            group = groups.get((lid, no_wd))
            if group is None:
                scale = decay_rate ** (num_layers + 1 - lid)
                group = groups[(lid, no_wd)] = dict(params=[], param_names=[], lr=self.base_lr * scale, lr_scale=scale,
                                                    weight_decay=0. if no_wd else self.base_wd)
            group['params'].append(param)
            group['param_names'].append(name)
        params.extend(groups[k] for k in sorted(groups))
        print_log(f'layer decay {rule} rate {decay_rate} over {num_layers + 2} ids: {len(groups)} parameter groups',
                  logger='current')
