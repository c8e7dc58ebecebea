"""The FCMAE encoder (ConvNeXt V2 paper §3): `ConvNeXtV2` on a patch mask with submanifold-sparse semantics, exactly.

Sparse = dense masked when every depthwise conv sees zeros at masked sites, GRN pools visible sites only and the output
is masked. `dense` computes every site and masks; `visible` runs the per-position layers on the visible
tokens only, a dense (N, N_visible, C) tensor because every sample keeps the same number of patches.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from .convnextv2 import GRN_DEFAULT, ConvNeXtV2

PATCH = 32  # the mask cell: the encoder's total stride (stem 4 × three 2×2 downsamplers)
PATHS = ('visible', 'dense')
GRN_POOLING = ('sample', 'batch')
QUAD = ((0, 0), (0, 1), (1, 0), (1, 1))  # (row, col) of the 4 sites under one 2×2 stride-2 output; a*2+b order


def check_image_size(shape) -> tuple[int, int]:
    """The mask grid (H/32, W/32) of an (N, C, H, W) input; any other size is an error naming the shape."""
    if len(shape) != 4 or shape[-2] % PATCH or shape[-1] % PATCH or shape[-2] == 0 or shape[-1] == 0:
        raise ValueError(f'FCMAE input of shape {tuple(shape)}: expected (N, C, H, W) with H and W positive '
                         f'multiples of the {PATCH}-px mask patch')
    return shape[-2] // PATCH, shape[-1] // PATCH


def upsample_mask(mask: torch.Tensor, h: int, w: int, scale: int) -> torch.Tensor:
    """(N, h·w) patch mask -> (N, h·scale, w·scale, 1): each 32-px cell covers scale×scale sites of a stage."""
    n = mask.shape[0]
    return mask.view(n, h, 1, w, 1, 1).expand(n, h, scale, w, scale, 1).reshape(n, h * scale, w * scale, 1)


def token_index(mask: torch.Tensor, h: int, w: int) -> list[torch.Tensor]:
    """Flat positions in the (N·H_s·W_s) grid of the visible sites of stages 0..3, ordered so that the four sites
    under token k of stage s+1 are tokens 4k..4k+3 of stage s (a 2×2 downsampler is then a Linear on groups of 4)."""
    n = mask.shape[0]
    visible = (mask == 0).sum(1)
    if (visible != visible[0]).any():
        raise ValueError(f"path='visible' needs the same number of visible patches in every sample, got "
                         f"{visible.tolist()}; use path='dense' for ragged masks")
    cells = torch.argsort(mask.to(torch.uint8), dim=1, stable=True)[:, :int(visible[0])]  # (N, n_vis) ascending
    rows, cols = (cells // w)[..., None], (cells % w)[..., None]
    offsets = torch.zeros(1, 2, dtype=torch.long, device=mask.device)
    quad = torch.tensor(QUAD, device=mask.device)
    index = []
    for scale in (1, 2, 4, 8):  # stages 3, 2, 1, 0
        if scale > 1:
            offsets = (2 * offsets[:, None] + quad[None]).reshape(-1, 2)  # (scale², 2), children in QUAD order
        flat = (rows * scale + offsets[:, 0]) * (w * scale) + cols * scale + offsets[:, 1]  # (N, n_vis, scale²)
        base = torch.arange(n, device=mask.device).view(n, 1, 1) * (h * w * scale * scale)
        index.insert(0, (flat + base).reshape(-1))
    return index


class GatherRows(torch.autograd.Function):
    """x[index] for an (R, C) tensor and unique indices; backward writes rows with index_copy_, which on CPU is
    several times faster than the index_add_ that autograd uses for index_select."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(index)
        ctx.rows = x.shape[0]
        return x.index_select(0, index)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        index, = ctx.saved_tensors
        return grad.new_zeros(ctx.rows, grad.shape[1]).index_copy_(0, index, grad), None


def scatter_rows(x: torch.Tensor, index: torch.Tensor, rows: int) -> torch.Tensor:
    """An (rows, C) tensor of zeros with x's rows written at `index` (unique); the inverse of GatherRows."""
    return x.new_zeros(rows, x.shape[-1]).index_copy(0, index, x.reshape(-1, x.shape[-1]))


def masked_grn(grn: nn.Module, x: torch.Tensor, keep: torch.Tensor | None = None, pooling: str = 'sample'):
    """GRN (or what a block has in its place, backbone/grn.py) on (N, H, W, C) with statistics over visible sites
    only (`keep` 1 there, None: all), pooled per sample (paper, JAX) or over the whole batch (official MinkowskiGRN);
    GRN's statistics in at least float32. Per-site layers (LN, LRN) ignore the mask; BN always pools the batch's
    visible sites. A V1 block or grn='none' has nn.Identity: x is returned as is."""
    if pooling not in GRN_POOLING:
        raise ValueError(f'grn pooling={pooling!r}: expected one of {GRN_POOLING}')
    return grn(x) if isinstance(grn, nn.Identity) else grn(x, keep, (1, 2) if pooling == 'sample' else (0, 1, 2))


def layer_norm(ln: nn.LayerNorm, x: torch.Tensor) -> torch.Tensor:
    """A (channels-first) LayerNorm module applied to channels-last input."""
    return F.layer_norm(x, ln.normalized_shape, ln.weight, ln.bias, ln.eps)


class MaskedConvNeXtV2(ConvNeXtV2):
    """The FCMAE encoder: `ConvNeXtV2`'s parameters exactly (no output norms), forward(x, mask) -> masked
    (N, C, H/32, W/32) features that equal a submanifold sparse ConvNeXt V2 on the visible patches.

    Args:
        grn_pooling: 'sample' (paper) or 'batch' (official PyTorch MinkowskiGRN, one norm
            over the batch: github.com/facebookresearch/ConvNeXt-V2/issues/86).
        path: 'visible' (per-position layers on visible tokens) or 'dense' (mask everywhere); both equal the
            official MinkowskiEngine encoder, which is therefore not needed (its checkpoints load, backbone.checkpoint).
        with_cp: activation checkpointing per block (recomputed in backward), as `ConvNeXtV2`.
        grn: what sits in GRN's place, as `ConvNeXtV2` (backbone/grn.py). Every option is exact on both paths
            (statistics over visible sites; BN's over the batch's visible sites) except CBAM, whose spatial 7×7 conv
            needs the grid: path='dense' only (it sees zeros at masked sites, as the depthwise conv).
    """

    def __init__(self, arch: str | dict = 'atto', in_channels: int = 3, drop_path_rate: float = 0.,
                 grn_pooling: str = 'sample', path: str = 'visible', with_cp: bool = False,
                 init_cfg: dict | None = None, block: str = 'v2', grn: dict | None = GRN_DEFAULT):
        super().__init__(arch, in_channels, drop_path_rate, out_indices=(), with_cp=with_cp, init_cfg=init_cfg,
                         block=block, grn=grn)
        if grn_pooling not in GRN_POOLING:
            raise ValueError(f'grn_pooling={grn_pooling!r}: expected one of {GRN_POOLING}')
        if path not in PATHS:
            raise ValueError(f'path={path!r}: expected one of {PATHS}')
        self.grn_pooling, self.path = grn_pooling, path
        self.grid_gate = any(getattr(b.grn, 'spatial_grid', False) for stage in self.stages for b in stage)
        self.check_path()
        convs = [self.downsample_layers[0][0]] + [self.downsample_layers[i][1] for i in range(1, 4)]
        # mask cells align with every stride only if no conv overlaps its neighbour and the strides multiply to 32
        assert all(c.kernel_size == c.stride for c in convs) and math.prod(c.stride[0] for c in convs) == PATCH

    def forward(self, x: torch.Tensor, mask: torch.Tensor, return_stages: bool = False):
        """x (N, C, H, W) with H, W multiples of 32; mask (N, H/32·W/32) or (N, H/32, W/32), 1 = masked.
        return_stages: the 4 stage outputs (N, C_i, H/2^(i+2), W/2^(i+2)), each zero at masked sites, as a list."""
        h, w = check_image_size(x.shape)
        if mask.shape[0] != x.shape[0] or mask[0].numel() != h * w:
            raise ValueError(f'mask of shape {tuple(mask.shape)} for input {tuple(x.shape)}: expected '
                             f'({x.shape[0]}, {h * w}), one entry per {PATCH}-px patch')
        mask = mask.reshape(x.shape[0], h * w)
        self.check_path()
        if self.path == 'dense':
            return self.forward_dense(x, mask.to(x.dtype), h, w, return_stages)
        return self.forward_visible(x, mask, h, w, return_stages)

    def check_path(self):
        """A GRN replacement that convolves over the grid (CBAM's spatial gate) has no grid on the visible path."""
        if self.path == 'visible' and self.grid_gate:
            raise ValueError(f"grn type={self.grn_cfg['type']!r} convolves over the spatial grid, which "
                             "path='visible' does not hold; use path='dense' (exact: zeros at masked sites)")

    def _block(self, fn, *args):
        if self.with_cp and self.training and args[1].requires_grad:
            return checkpoint(fn, *args, use_reentrant=False)
        return fn(*args)

    # ---- dense: every site computed, masked sites zeroed before each depthwise conv -------------------------
    def forward_dense(self, x: torch.Tensor, mask: torch.Tensor, h: int, w: int, return_stages: bool = False):
        stem_conv, stem_norm, stages = *self.downsample_layers[0], []
        x = layer_norm(stem_norm, stem_conv(x).permute(0, 2, 3, 1))  # (N, C, H, W) -> (N, H, W, C)
        for i in range(4):
            keep = 1 - upsample_mask(mask, h, w, 2 ** (3 - i))  # (N, H_i, W_i, 1)
            if i > 0:
                norm, conv = self.downsample_layers[i]
                # mask cells (32 px) align with every stride: a visible output sees visible inputs only
                x = conv(layer_norm(norm, x).permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
            x = x * keep
            for block in self.stages[i]:
                x = self._block(self._dense_block, block, x, keep)
            stages.append(x.permute(0, 3, 1, 2))  # (N, H, W, C) -> (N, C, H, W), zero at masked sites
        return stages if return_stages else stages[-1]

    def _dense_block(self, block: nn.Module, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        y = block.dwconv(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)  # channels-last views, (N, H, W, C)
        y = block.act(block.pwconv1(block.norm(y)))
        y = block.layer_scale(block.pwconv2(masked_grn(block.grn, y, keep, self.grn_pooling)))
        return (x + block.drop_path(y)) * keep  # the next depthwise conv must see zeros at masked sites

    # ---- visible: per-position layers on (N, N_vis, C) tokens; depthwise convs via a zeroed grid ------------
    def forward_visible(self, x: torch.Tensor, mask: torch.Tensor, h: int, w: int, return_stages: bool = False):
        n, c, stages = *x.shape[:2], []
        index = token_index(mask, h, w)
        stem_conv, stem_norm = self.downsample_layers[0]
        patches = x.reshape(n, c, 8 * h, 4, 8 * w, 4).permute(0, 2, 4, 3, 5, 1)  # (N, H0, W0, 4, 4, C)
        patches = patches.reshape(-1, 16 * c).index_select(0, index[0])  # visible 4×4 patches only
        weight = stem_conv.weight.permute(0, 2, 3, 1).reshape(stem_conv.out_channels, -1)  # same (row, col, c) order
        x = layer_norm(stem_norm, F.linear(patches, weight, stem_conv.bias).view(n, -1, stem_conv.out_channels))
        for i in range(4):
            if i > 0:
                norm, conv = self.downsample_layers[i]
                weight = conv.weight.permute(0, 2, 3, 1).reshape(conv.out_channels, -1)  # (C_out, 2·2·C_in)
                x = layer_norm(norm, x).reshape(n, -1, weight.shape[1])  # 4 children of a site are contiguous
                x = F.linear(x, weight, conv.bias)
            grid = (n, h * 2 ** (3 - i), w * 2 ** (3 - i))
            for block in self.stages[i]:
                x = self._block(self._visible_block, block, x, index[i], grid)
            if return_stages and i < 3:  # (N, C_i, H_i, W_i), zero at masked sites
                canvas = scatter_rows(x, index[i], grid[0] * grid[1] * grid[2]).view(*grid, -1)
                stages.append(canvas.permute(0, 3, 1, 2))
        out = scatter_rows(x, index[3], n * h * w).view(n, h, w, -1)  # zero at masked sites
        out = out.permute(0, 3, 1, 2)  # (N, H, W, C) -> (N, C, H, W)
        return stages + [out] if return_stages else out

    def _visible_block(self, block: nn.Module, x: torch.Tensor, index: torch.Tensor, grid: tuple) -> torch.Tensor:
        n, _, c = x.shape
        canvas = scatter_rows(x, index, grid[0] * grid[1] * grid[2]).view(*grid, c)  # zero at masked sites
        y = block.dwconv(canvas.permute(0, 3, 1, 2))  # channels-last (N, C, H, W) view
        y = GatherRows.apply(y.permute(0, 2, 3, 1).reshape(-1, c), index).view(n, -1, 1, c)  # (N, N_vis, 1, C)
        y = block.act(block.pwconv1(block.norm(y)))
        if self.grn_pooling == 'batch':
            y = masked_grn(block.grn, y.view(1, -1, 1, y.shape[-1])).view(n, -1, 1, y.shape[-1])
        else:
            y = masked_grn(block.grn, y)
        return x + block.drop_path(block.layer_scale(block.pwconv2(y)).view(n, -1, c))
