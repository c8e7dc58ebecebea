"""The FCMAE decoders of the paper's decoder ablation (ConvNeXt V2 Table 1): besides the default plain ConvNeXt blocks
on the 1/32 grid (built in pretrain/fcmae.py), a hierarchical UNet with or without skips from the encoder stages and a
standard pre-norm transformer over the 1/32 grid tokens. Each takes (N, D, h, w) with mask tokens already in place."""
from functools import partial

import torch
import torch.nn as nn
from timm.layers import build_sincos2d_pos_embed
from timm.models.vision_transformer import Block as TransformerBlock

from backbone.convnextv2 import Block

DECODERS = ('convnext', 'unet', 'unet_noskip', 'transformer')
UNET_STRIDE = 4  # the UNet predicts pixels at the stem's 1/4 resolution, 4×4 per site, after three ×2 upsamplings


class UNetDecoder(nn.Module):
    """1/32 → 1/16 → 1/8 → 1/4: `depth` ConvNeXt blocks at each scale, a 2×2 stride-2 transposed conv between
    scales, width halving at each (dim, dim/2, dim/4, dim/8). skip=True adds a 1×1 projection of the encoder's
    stage output of that scale (stage 2, 1, 0; zero at masked sites with the sparse encoder) after each upsampling;
    skip=False is the same decoder without that path."""

    def __init__(self, dim: int, depth: int, encoder_dims: tuple, skip: bool = True, block: str = 'v2'):
        super().__init__()
        if dim % 8:
            raise ValueError(f'decoder_embed_dim={dim}: the UNet decoder halves it three times, expected a multiple '
                             'of 8')
        widths = [dim // 2 ** i for i in range(4)]
        self.widths, self.skip = widths, skip
        self.levels = nn.ModuleList(nn.Sequential(*[Block(w, block=block) for _ in range(depth)]) for w in widths)
        self.up = nn.ModuleList(nn.ConvTranspose2d(widths[i], widths[i + 1], 2, stride=2) for i in range(3))
        self.skips = nn.ModuleList(nn.Conv2d(encoder_dims[2 - i], widths[i + 1], 1) for i in range(3)) \
            if skip else None

    def forward(self, x: torch.Tensor, stages: list | None = None) -> torch.Tensor:
        """x (N, dim, h, w), stages: the encoder's 4 stage outputs (needed with skips) -> (N, dim/8, 8h, 8w)."""
        if self.skip and (stages is None or len(stages) != 4):
            raise ValueError('UNetDecoder with skips needs the encoder\'s 4 stage outputs (return_stages=True)')
        x = self.levels[0](x)
        for i in range(3):
            x = self.up[i](x)
            if self.skip:
                x = x + self.skips[i](stages[2 - i].to(x.dtype))
            x = self.levels[i + 1](x)
        return x


class TransformerDecoder(nn.Module):
    """`depth` pre-norm ViT blocks (timm's, qkv bias, LayerNorm eps 1e-6 as the MAE decoder) over the h·w tokens of
    the 1/32 grid, a fixed 2-D sin-cos position embedding computed from the grid (so any input size works, as MAE's
    decoder_pos_embed but not frozen to one size), a final LayerNorm. Heads: dim/64 (64 per head) when dim is a
    multiple of 64, else one."""

    def __init__(self, dim: int, depth: int):
        super().__init__()
        if dim % 4:
            raise ValueError(f'decoder_embed_dim={dim}: the 2-D sin-cos position embedding needs a multiple of 4')
        self.num_heads = dim // 64 if dim % 64 == 0 else 1
        norm = partial(nn.LayerNorm, eps=1e-6)
        self.blocks = nn.Sequential(*[TransformerBlock(dim, self.num_heads, qkv_bias=True, norm_layer=norm)
                                      for _ in range(depth)])
        self.norm = norm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, d, h, w = x.shape
        pos = build_sincos2d_pos_embed([h, w], d, device=x.device, dtype=x.dtype)  # (h·w, d), row-major
        tokens = x.flatten(2).transpose(1, 2) + pos  # (N, h·w, d)
        return self.norm(self.blocks(tokens)).transpose(1, 2).reshape(n, d, h, w)
