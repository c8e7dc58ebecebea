"""FCMAE's optimizer parameter groups: no layer decay, and weight decay either as in fine-tuning (GRN γ/β, biases and
1-D tensors exempt) or as the official pre-training (timm's `add_weight_decay`: only 1-D tensors and biases exempt)."""
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS

from backbone.layer_decay import ConvNeXtV2LayerDecayConstructor

GRN = ('grn.gamma', 'grn.beta')


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class FCMAEOptimWrapperConstructor(ConvNeXtV2LayerDecayConstructor):
    """`ConvNeXtV2LayerDecayConstructor` plus paramwise_cfg.grn_weight_decay: False (default) exempts GRN γ/β from
    weight decay; True decays them, as the official main_pretrain.py (its GRN γ/β are (1, C): not 1-D)."""

    def add_params(self, params: list, module, **kwargs) -> None:
        first = len(params)
        super().add_params(params, module, **kwargs)
        if not self.paramwise_cfg.get('grn_weight_decay', False):
            return
        for group in params[first:]:
            if group['weight_decay'] != 0:
                continue
            grn = [i for i, (n, p) in enumerate(zip(group['param_names'], group['params']))
                   if n.endswith(GRN) and p.ndim > 1]
            if grn:
                params.append(dict(group, params=[group['params'][i] for i in grn], weight_decay=self.base_wd,
                                   param_names=[group['param_names'][i] for i in grn]))
                keep = [i for i in range(len(group['params'])) if i not in set(grn)]
                group['params'], group['param_names'] = [group['params'][i] for i in keep], \
                    [group['param_names'][i] for i in keep]
        params[first:] = [g for g in params[first:] if g['params']]
