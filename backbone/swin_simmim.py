"""mmdet's Swin Transformer initialised from SimMIM checkpoints, for the paper's Swin baselines (docs/RECIPES.md).

Reads raw SimMIM checkpoints (`encoder.*` / `decoder.*` in the original Swin naming, a yacs config beside them),
mmpretrain's SimMIM checkpoints (pretrain/configs/simmim_swin_*.py: `backbone.*` in mmdet's Swin naming, `neck.*`) and
other converted ones (mmdet naming, optionally `backbone.`-prefixed), resizes relative-position tables when the window
differs (SimMIM pretrains Swin-B with window 6, Swin-L with 12, at 192 px), then loads strictly. Imported only by the
Swin configs (custom_imports), so `backbone` itself does not depend on mmdet.
"""
import math
import re

import torch
import torch.nn.functional as F
from mmdet.models.backbones.swin import SwinTransformer, swin_converter
from mmengine.registry import MODELS

from .checkpoint import DETECTOR_PARTS, load_state_dict_strictly, pick_state_dict, safe_load

MAY_LACK = ('norm0.*', 'norm1.*', 'norm2.*', 'norm3.*')  # the detector's per-stage output norms are new
BUFFERS = ('*relative_position_index', '*attn_mask')  # recomputed by the model for its own window size
# SimMIM's final norm, mask token, decoder (mmpretrain's: neck); a classifier; a detector's or segmentor's other parts
MAY_LEAVE = ('norm.*', 'mask_token', 'decoder.*', 'head.*') + DETECTOR_PARTS + BUFFERS


def to_mmdet_keys(sd: dict) -> tuple[dict, list]:
    """(backbone keys in mmdet's Swin naming, checkpoint keys outside the backbone): strip `module.`, then `backbone.`
    (mmpretrain's SimMIM, a detector: their neck and heads are returned as outside) or SimMIM's `encoder.` (before the
    converter, or it would skip every key), then convert `layers.*`. mmpretrain names Swin as mmdet does; the one
    output norm of its SimMIM encoder (`norm3` beside `mask_token`) is the final `norm` of the original naming."""
    sd = {k[len('module.'):] if k.startswith('module.') else k: v for k, v in sd.items()}
    outside = []
    if any(k.startswith('backbone.') for k in sd):
        outside = [k for k in sd if not k.startswith('backbone.')]
        sd = {k[len('backbone.'):]: v for k, v in sd.items() if k.startswith('backbone.')}
    elif any(k.startswith('encoder.') for k in sd):
        sd = {k[len('encoder.'):] if k.startswith('encoder.') else k: v for k, v in sd.items()}
    if any(k.startswith('layers.') for k in sd):  # original Swin / SimMIM naming
        sd = {k[len('backbone.'):]: v for k, v in swin_converter(sd).items()}
    if 'mask_token' in sd:  # a SimMIM encoder: its last stage's norm is SimMIM's final norm, not a detector's norm3
        last = max((int(k.split('.')[1]) for k in sd if k.startswith('stages.')), default=-1)
        sd = {re.sub(rf'^norm{last}\.', 'norm.', k): v for k, v in sd.items()}
    return sd, outside


def resize_table(table: torch.Tensor, length: int) -> torch.Tensor:
    """Bicubic resize of a ((2w-1)^2, heads) relative-position bias table to `length` = (2w'-1)^2 rows."""
    old, new = math.isqrt(table.shape[0]), math.isqrt(length)
    grid = table.T.reshape(1, table.shape[1], old, old)  # (L, heads) -> (1, heads, 2w-1, 2w-1)
    grid = F.interpolate(grid.float(), size=(new, new), mode='bicubic', align_corners=False)
    return grid.reshape(table.shape[1], length).T.contiguous().to(table.dtype)


class SimMIMSwinTransformer(SwinTransformer):
    """mmdet's SwinTransformer whose `init_cfg=dict(type='Pretrained', checkpoint=P)` loads a SimMIM or converted
    Swin checkpoint strictly (backbone.checkpoint's rule): anything but MAY_LACK / MAY_LEAVE raises CheckpointError."""

    def init_weights(self):
        if self.init_cfg and self.init_cfg.get('type') == 'Pretrained':
            self.load_simmim(self.init_cfg['checkpoint'])
        else:
            super().init_weights()

    def describe(self) -> str:
        depths = tuple(len(stage.blocks) for stage in self.stages)
        window = self.stages[0].blocks[0].attn.window_size
        return f'{type(self).__name__}(embed_dims={self.num_features[0]}, depths={depths}, window_size={window})'

    def load_simmim(self, path: str) -> dict:
        sd, outside = to_mmdet_keys(pick_state_dict(safe_load(path))[0])
        own = self.state_dict()
        resized = [k for k in own if 'relative_position_bias_table' in k and k in sd
                   and sd[k].shape[1] == own[k].shape[1] and sd[k].shape[0] != own[k].shape[0]]
        for k in resized:
            sd[k] = resize_table(sd[k], own[k].shape[0])
        report = load_state_dict_strictly(self, sd, path, MAY_LACK, MAY_LEAVE, outside, fmt='Swin', skip=BUFFERS,
                                          what=self.describe(), note=f'{len(resized)} relative-position tables resized')
        return dict(report, resized=resized)


# registered here, not in backbone/__init__.py, so that only configs that import this module need mmdet;
# a name no child registry holds, so mmdet's own SwinTransformer is never shadowed
MODELS.register_module(name='SimMIMSwinTransformer', module=SimMIMSwinTransformer)
