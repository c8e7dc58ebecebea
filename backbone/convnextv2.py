"""ConvNeXt V2 (arXiv 2301.00808): GRN (§4), the paper block, and one backbone for classification and dense prediction.

Parameter names follow the official code (`downsample_layers`, `stages`, `dwconv`, `pwconv1`, `grn.gamma`, ...) so
that official checkpoints are the loader's identity case and layer-decay rules read the names directly.
"""
import os
import warnings
from typing import Sequence

import torch
import torch.nn as nn
from mmengine.model import BaseModule
from timm.layers import DropPath, LayerNorm2d, trunc_normal_  # LayerNorm2d: channels of (N, C, H, W), eps 1e-6
from torch.utils.checkpoint import checkpoint

from .checkpoint import block_depths, load_pretrained
from .grn import DEFAULT as GRN_DEFAULT
from .grn import GRN, build_grn  # noqa: F401  (GRN: importable from here, as before)

VARIANTS = {  # the paper's eight sizes (docs/RECIPES.md "Variants"); FCMAE, configs and tests all read this table
    'atto': dict(depths=(2, 2, 6, 2), dims=(40, 80, 160, 320)),
    'femto': dict(depths=(2, 2, 6, 2), dims=(48, 96, 192, 384)),
    'pico': dict(depths=(2, 2, 6, 2), dims=(64, 128, 256, 512)),
    'nano': dict(depths=(2, 2, 8, 2), dims=(80, 160, 320, 640)),
    'tiny': dict(depths=(3, 3, 9, 3), dims=(96, 192, 384, 768)),
    'base': dict(depths=(3, 3, 27, 3), dims=(128, 256, 512, 1024)),
    'large': dict(depths=(3, 3, 27, 3), dims=(192, 384, 768, 1536)),
    'huge': dict(depths=(3, 3, 27, 3), dims=(352, 704, 1408, 2816)),
}
V1_VARIANTS = {  # ConvNeXt V1's own sizes (arXiv 2201.03545, Table 10 / official convnext.py); with block='v1'
    'tiny': dict(depths=(3, 3, 9, 3), dims=(96, 192, 384, 768)),
    'small': dict(depths=(3, 3, 27, 3), dims=(96, 192, 384, 768)),
    'base': dict(depths=(3, 3, 27, 3), dims=(128, 256, 512, 1024)),
    'large': dict(depths=(3, 3, 27, 3), dims=(192, 384, 768, 1536)),
    'xlarge': dict(depths=(3, 3, 27, 3), dims=(256, 512, 1024, 2048)),
}


def sizes(block: str = 'v2') -> dict:
    """The named sizes of a block version: V2's eight; with V1 blocks also V1's small and xlarge (same settings
    where the names meet)."""
    return VARIANTS if block == 'v2' else {**VARIANTS, **V1_VARIANTS}


def arch_settings(arch: str | dict, block: str = 'v2') -> dict:
    """Depths and dims of a variant name, or a dict(depths=..., dims=...) for a custom size."""
    if isinstance(arch, dict):
        return dict(depths=tuple(arch['depths']), dims=tuple(arch['dims']))
    if arch not in sizes(block):
        raise KeyError(f'unknown ConvNeXt {block.upper()} arch {arch!r}; expected one of {list(sizes(block))}')
    return sizes(block)[arch]


def infer_arch(sd: dict, block: str = 'v2'):
    """A size name of that block version (or dict(depths, dims)) from our state dict's block counts and widths."""
    depths = block_depths(sd)
    dims = tuple(sd[f'stages.{i}.0.dwconv.weight'].shape[0] for i in range(4) if depths[i])
    arch = next((n for n, v in sizes(block).items() if v['depths'] == depths and v['dims'] == dims), None)
    return arch or dict(depths=depths, dims=dims)


BLOCKS = ('v2', 'v1')  # 'v1': the ConvNeXt V1 block, for the paper's co-design ablation (V1 + FCMAE, §4)


class Block(nn.Module):
    """The ConvNeXt V2 block: dwconv 7×7 → LN → Linear d→4d → GELU → GRN → Linear 4d→d → drop path → residual.
    block='v1' is the ConvNeXt V1 block: no GRN, LayerScale `gamma` (C,) at ls_init_value after pwconv2.
    `grn` picks what sits in GRN's place (backbone/grn.py: the paper's GRN by default, or an ablation of it)."""

    def __init__(self, dim: int, drop_path: float = 0., block: str = 'v2', ls_init_value: float = 1e-6,
                 grn: dict | None = GRN_DEFAULT):
        super().__init__()
        if block not in BLOCKS:
            raise ValueError(f'block={block!r}: expected one of {BLOCKS}')
        if block == 'v1' and grn is not None and dict(grn) not in (GRN_DEFAULT, dict(type='none')):
            raise ValueError(f"block='v1' has no GRN, so grn={dict(grn)!r} has no place; use block='v2' with it")
        self.dwconv = nn.Conv2d(dim, dim, kernel_size=7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.act = nn.GELU()
        self.grn = build_grn(grn, 4 * dim) if block == 'v2' else nn.Identity()
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(torch.full((dim,), ls_init_value)) if block == 'v1' else None
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def layer_scale(self, y: torch.Tensor) -> torch.Tensor:
        """V1's per-channel LayerScale on channels-last output; V2 has none."""
        return y if self.gamma is None else y * self.gamma.to(y.dtype)

    def mlp(self, x: torch.Tensor) -> torch.Tensor:
        """The per-position part of the block, on (..., C) channels-last input."""
        return self.layer_scale(self.pwconv2(self.grn(self.act(self.pwconv1(self.norm(x))))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.dwconv(x).permute(0, 2, 3, 1)  # (N, C, H, W) -> (N, H, W, C)
        y = self.mlp(y).permute(0, 3, 1, 2)  # (N, H, W, C) -> (N, C, H, W)
        return x + self.drop_path(y)


def pretrained_init_cfg(pretrained, init_cfg: dict | None) -> dict | None:
    """`pretrained=PATH` → init_cfg=dict(type='Pretrained', checkpoint=PATH) with a deprecation warning, as mmdet's
    and mmseg's own backbones treat it; a checkpoint named both ways is an error, not a silent choice."""
    if pretrained is None:
        return init_cfg
    if not isinstance(pretrained, (str, os.PathLike)):
        raise TypeError(f'ConvNeXtV2: pretrained must be a path, URL or zoo name, not {type(pretrained).__name__}')
    if init_cfg and init_cfg.get('checkpoint'):
        raise ValueError(f'ConvNeXtV2: pretrained={pretrained!r} and init_cfg={dict(init_cfg)!r} both name a '
                         "checkpoint; keep one (init_cfg=dict(type='Pretrained', checkpoint=...))")
    warnings.warn("ConvNeXtV2: pretrained= is deprecated (as in mmdet/mmseg); use init_cfg=dict(type='Pretrained', "
                  f'checkpoint={os.fspath(pretrained)!r})', FutureWarning, stacklevel=3)
    return dict(type='Pretrained', checkpoint=os.fspath(pretrained))


class ConvNeXtV2(BaseModule):
    """ConvNeXt V2 backbone: a tuple of normed stage features (detection, segmentation) or, with
    `num_classes > 0`, logits from global pool → LayerNorm → Linear (ImageNet fine-tuning).

    Args:
        arch: a name in VARIANTS or dict(depths=..., dims=...).
        out_indices: stages whose features are returned; each gets a channels-first LayerNorm `norm{i}`.
        frozen_stages: freeze the stem and stages 0..frozen_stages-1 (kept in eval mode); -1 freezes nothing.
        with_cp: activation checkpointing per block, to trade compute for memory on the big variants.
        head_init_scale: multiplies the initial head weights (the paper uses 0.001 when fine-tuning FCMAE weights).
        init_cfg: dict(type='Pretrained', checkpoint=PATH) loads any format backbone.checkpoint reads, strictly;
            PATH may also be a URL or a model-zoo name (backbone/zoo.py).
        pretrained: deprecated alias of that init_cfg, as mmdet/mmseg backbones accept (their model bases set it).
        block: 'v2' (GRN) or 'v1' (ConvNeXt V1: LayerScale 1e-6, no GRN; arch may also be V1's small/xlarge).
        grn: what every V2 block has in GRN's place: dict(type='GRN') (the paper's), an ablation of GRN or a
            replacement (LRN, BN, LN, SE, CBAM, none); backbone/grn.py lists them. Loading a checkpoint across a
            GRN / no-GRN boundary: init_cfg=dict(type='Pretrained', checkpoint=P, grn_mismatch='add' or 'drop').
    """

    def __init__(self, arch: str | dict = 'tiny', in_channels: int = 3, drop_path_rate: float = 0.,
                 out_indices: Sequence[int] = (0, 1, 2, 3), frozen_stages: int = -1, with_cp: bool = False,
                 num_classes: int = 0, head_init_scale: float = 1., init_cfg: dict | None = None,
                 pretrained: str | None = None, block: str = 'v2', grn: dict | None = GRN_DEFAULT):
        super().__init__(init_cfg=pretrained_init_cfg(pretrained, init_cfg))
        settings = arch_settings(arch, block)
        self.arch, self.depths, self.dims = arch, settings['depths'], settings['dims']
        self.out_indices = tuple(i % 4 for i in out_indices)
        self.frozen_stages, self.with_cp = frozen_stages, with_cp
        self.num_classes, self.head_init_scale, self.block = num_classes, head_init_scale, block
        self.grn_cfg = dict(GRN_DEFAULT if grn is None else grn)

        dims = self.dims
        self.downsample_layers = nn.ModuleList([nn.Sequential(
            nn.Conv2d(in_channels, dims[0], kernel_size=4, stride=4), LayerNorm2d(dims[0]))])
        for i in range(3):
            self.downsample_layers.append(nn.Sequential(
                LayerNorm2d(dims[i]), nn.Conv2d(dims[i], dims[i + 1], kernel_size=2, stride=2)))
        n = sum(self.depths)  # stochastic depth grows linearly from 0 to drop_path_rate
        rates = [drop_path_rate * k / max(n - 1, 1) for k in range(n)]
        self.stages = nn.ModuleList()
        for i, depth in enumerate(self.depths):
            first = sum(self.depths[:i])
            self.stages.append(nn.Sequential(*[Block(dims[i], rates[first + j], block, grn=grn) for j in range(depth)]))

        if num_classes > 0:
            self.norm = nn.LayerNorm(dims[-1], eps=1e-6)
            self.head = nn.Linear(dims[-1], num_classes)
        else:
            for i in self.out_indices:
                self.add_module(f'norm{i}', LayerNorm2d(dims[i]))
        self._init_fresh()
        self._freeze_stages()

    def new_keys(self) -> tuple[str, ...]:
        """Patterns of parameters that pretrained checkpoints of other stages are not expected to hold."""
        if self.num_classes > 0:
            return ('norm.*', 'head.*')
        return tuple(f'norm{i}.*' for i in self.out_indices)

    def _init_fresh(self):
        """trunc-normal(.02) conv/linear weights, zero biases (official init); GRN starts at zero."""
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                trunc_normal_(m.weight, std=.02)
                if m.bias is not None:  # CBAM's spatial conv has none
                    nn.init.zeros_(m.bias)
        if self.num_classes > 0:
            self.head.weight.data.mul_(self.head_init_scale)
            self.head.bias.data.mul_(self.head_init_scale)

    def init_weights(self):
        """Fresh init, or a strict load of `init_cfg.checkpoint` in any format the suite reads."""
        if self.init_cfg and self.init_cfg.get('type') == 'Pretrained':
            grn_mismatch = self.init_cfg.get('grn_mismatch', 'error')  # across a GRN / no-GRN boundary (Table 2f)
            load_pretrained(self, self.init_cfg['checkpoint'], grn_mismatch=grn_mismatch)
        else:
            self._init_fresh()
        self._freeze_stages()

    def _freeze_stages(self):
        for i in range(max(self.frozen_stages, 0)):
            for module in (self.downsample_layers[i], self.stages[i]):
                module.eval()
                for p in module.parameters():
                    p.requires_grad = False

    def train(self, mode: bool = True):
        super().train(mode)
        self._freeze_stages()
        return self

    def forward_stage(self, i: int, x: torch.Tensor) -> torch.Tensor:
        x = self.downsample_layers[i](x)
        for block in self.stages[i]:
            if self.with_cp and self.training and x.requires_grad:
                x = checkpoint(block, x, use_reentrant=False)
            else:
                x = block(x)
        return x

    def forward(self, x: torch.Tensor):
        # channels-last memory: each block's (N, C, H, W) -> (N, H, W, C) permute is then free, not a copy
        x = x.contiguous(memory_format=torch.channels_last)
        outs = []
        for i in range(4):
            x = self.forward_stage(i, x)
            if self.num_classes == 0 and i in self.out_indices:
                # contiguous (N, C, H, W): mmcv's RoIAlign reads raw memory as NCHW, channels-last input gives garbage
                outs.append(getattr(self, f'norm{i}')(x).contiguous())
        if self.num_classes > 0:
            return self.head(self.norm(x.mean(dim=(-2, -1))))  # global average pool (N, C, H, W) -> (N, C)
        return tuple(outs)


def param_count(arch: str | dict = 'base', grn: dict | None = GRN_DEFAULT, num_classes: int = 1000) -> int:
    """Parameters of the ImageNet classifier (the paper's #param column) with `grn` in every block, counted on the
    meta device (nothing allocated): a one-block-per-stage model plus the further blocks of each stage."""
    settings = arch_settings(arch)
    with torch.device('meta'):
        one = ConvNeXtV2(dict(settings, depths=(1,) * 4), num_classes=num_classes, grn=grn)
        return sum(p.numel() for p in one.parameters()) + sum(
            (depth - 1) * sum(p.numel() for p in one.stages[i][0].parameters())
            for i, depth in enumerate(settings['depths']))
