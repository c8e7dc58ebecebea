"""GRN (ConvNeXt V2 §4) and the paper's ablations of it as options, built from one config by `build_grn(cfg, dim)`.

Every module here takes channels-last (N, H, W, C) input where GRN sits (after the block's GELU, on the 4C-wide
features) and `forward(x, keep=None, dims=(1, 2))`: `keep` (N, H, W, 1), 1 at visible sites, restricts every
statistic to the visible sites of a masked input (FCMAE, backbone/masked.py); `dims` are the pooled axes ((1, 2) per
sample, (0, 1, 2) over the batch). Without them, each is the plain dense layer. Options, after the paper's tables:

- dict(type='GRN', aggregation, normalization, residual, form): Table 2a/2b/2c and appendix Table 16, below.
- dict(type='none'): no GRN (Table 2d "Baseline" but without V1's LayerScale; that one is block='v1').
- dict(type='LRN', size=5, alpha=5e-4, beta=.75, k=2.): torch's LocalResponseNorm across the 4C channels, per site;
  AlexNet's values (Krizhevsky et al. 2012, §3.3: n=5, α=1e-4, β=.75, k=2), α given ×n since torch divides by n.
- dict(type='BN'): BatchNorm2d (torch defaults); under a mask, batch statistics over the visible sites only
  (MinkowskiBatchNorm's semantics), so both masked paths agree.
- dict(type='LN'): LayerNorm over the 4C channels per site, eps 1e-6 as the block's own.
- dict(type='SE', rd_ratio=1/16): timm's SEModule (squeeze: mean over sites; excite: 1×1 conv C→C/16, ReLU,
  C/16→C, sigmoid; x·gate). Reduction 16 (Hu et al.'s default) is what brings V2-B to the paper's 109M
  (`param_count('base', dict(type='SE'))` = 109.6M; GRN 88.7M): the reducing MLP costs 2·(4C)²/16 per block.
- dict(type='CBAM', rd_ratio=1/16): timm's CbamModule with the official CBAM's MLP biases (channel gate from
  mean- and max-pooled MLP responses, then a 7×7 conv + BN spatial gate on the channel mean/max maps): 109.6M at B.
  Under a mask, channel pooling sees visible sites only and the spatial conv sees zeros at masked sites (as the
  depthwise conv does) with BN statistics over visible sites: submanifold-exact, on MaskedConvNeXtV2's dense path
  only (the visible path holds no grid to convolve; it raises).
"""
import torch
import torch.nn as nn
from timm.layers.cbam import CbamModule
from timm.layers.squeeze_excite import SEModule

AGGREGATIONS = ('l2', 'l1', 'avg')  # Table 2a: L2 norm (paper), L1 norm, global average pooling
NORMALIZATIONS = ('divisive', 'standardize', 'inverse_sum')  # Table 2b: ‖X‖/Σ‖X‖ (paper), (‖X‖−μ)/σ, 1/Σ‖X‖
FORMS = ('full', 'affine', 'x_gx', 'x_nx')  # appendix Table 16: (d) X·N(G(X)) (paper), (a) X, (b) X·G(X), (c) X·N(X)
TYPES = ('GRN', 'none', 'LRN', 'BN', 'LN', 'SE', 'CBAM')
DEFAULT = dict(type='GRN')  # the paper's GRN, exactly: L2 aggregation, divisive normalization, with the skip


class GRN(nn.Module):
    """Global Response Normalization: x + γ·(x·N(G(x))) + β on (N, H, W, C), γ = β = 0 at init (the identity).

    G: per-channel spatial aggregation, 'l2' ‖X_i‖ (paper), 'l1' Σ|X_i|, 'avg' mean(X_i) (global average pooling,
    as SE's squeeze). N: across channels, 'divisive' g_i / mean_j g_j (paper; the mean, as the paper's pseudocode,
    is Σ over C), 'standardize' (g_i − μ)/σ (population σ over channels), 'inverse_sum' 1/mean_j g_j (one scalar per
    sample). residual=False drops the '+ x' skip (Table 2c). `form` (Table 16, whose affine and skip are implied):
    'affine' x + γ·x + β, "channel-wise scaling and shifting without explicit feature normalization" (case a);
    'x_gx' x + γ·(x·G(x)) + β, aggregation without normalization (b); 'x_nx' x + γ·(x·N(|x|)) + β, the channel
    normalization applied at each site to |x| with no spatial aggregation before it (c, "unstable" in the paper);
    'full' the paper's GRN (d). Statistics in at least float32 (a half-precision sum of squares overflows).
    """

    def __init__(self, dim: int, eps: float = 1e-6, aggregation: str | None = None, normalization: str | None = None,
                 residual: bool = True, form: str = 'full'):
        super().__init__()
        if form not in FORMS:
            raise ValueError(f'GRN form={form!r}: expected one of {FORMS}')
        for name, value, allowed, used in (('aggregation', aggregation, AGGREGATIONS, ('full', 'x_gx')),
                                           ('normalization', normalization, NORMALIZATIONS, ('full', 'x_nx'))):
            if value is not None and value not in allowed:
                raise ValueError(f'GRN {name}={value!r}: expected one of {allowed}')
            if value is not None and form not in used:
                raise ValueError(f'GRN {name}={value!r} with form={form!r}: that form has no {name} step '
                                 f'(forms with one: {used})')
        self.gamma = nn.Parameter(torch.zeros(1, 1, 1, dim))  # zero γ, β: GRN starts as the identity
        self.beta = nn.Parameter(torch.zeros(1, 1, 1, dim))
        self.eps, self.residual, self.form = eps, residual, form
        self.aggregation, self.normalization = aggregation or 'l2', normalization or 'divisive'

    def extra_repr(self) -> str:
        return (f'{self.gamma.shape[-1]}, aggregation={self.aggregation}, normalization={self.normalization}, '
                f'residual={self.residual}, form={self.form}')

    def aggregate(self, x: torch.Tensor, keep: torch.Tensor | None = None, dims=(1, 2)) -> torch.Tensor:
        """G(X): one value per channel over the sites in `dims` (visible ones only, given `keep`), float32 or wider."""
        dtype = torch.promote_types(x.dtype, torch.float32)
        x = x if keep is None else x * keep
        if self.aggregation == 'l2':
            return torch.linalg.vector_norm(x, dim=dims, keepdim=True, dtype=dtype)
        if self.aggregation == 'l1':
            return torch.linalg.vector_norm(x, ord=1, dim=dims, keepdim=True, dtype=dtype)
        total = x.sum(dim=dims, keepdim=True, dtype=dtype)
        return total / site_count(x, keep, dims, dtype)

    def response(self, gx: torch.Tensor) -> torch.Tensor:
        """N: normalization of the aggregated values gx (..., C) across channels."""
        mean = gx.mean(dim=-1, keepdim=True)
        if self.normalization == 'divisive':
            return gx / (mean + self.eps)
        if self.normalization == 'standardize':
            return (gx - mean) / (gx.std(dim=-1, keepdim=True, unbiased=False) + self.eps)
        return 1 / (mean + self.eps)

    def calibration(self, x: torch.Tensor, keep=None, dims=(1, 2)) -> torch.Tensor | None:
        """The factor x is multiplied by under γ: N(G(x)), G(x), N(|x|), or None for the affine form."""
        if self.form == 'full':
            return self.response(self.aggregate(x, keep, dims))
        if self.form == 'x_gx':
            return self.aggregate(x, keep, dims)
        if self.form == 'x_nx':
            return self.response(x.abs().to(torch.promote_types(x.dtype, torch.float32)))
        return None

    def forward(self, x: torch.Tensor, keep: torch.Tensor | None = None, dims=(1, 2)) -> torch.Tensor:
        return self.apply_response(x, self.calibration(x, keep, dims))

    def apply_response(self, x: torch.Tensor, nx: torch.Tensor | None) -> torch.Tensor:
        # x·(1 + γ·Nx) + β: one pass over the large tensor instead of three
        scale = self.gamma if nx is None else self.gamma * nx
        return torch.addcmul(self.beta.to(x.dtype), x, (scale + 1 if self.residual else scale).to(x.dtype))


def site_count(x: torch.Tensor, keep: torch.Tensor | None, dims, dtype) -> torch.Tensor:
    """How many (visible) sites of x (N, H, W, C) each statistic over `dims` pools; keep may broadcast."""
    if keep is None:
        return torch.tensor([x.shape[d] for d in dims]).prod().to(dtype)
    return keep.expand(*x.shape[:-1], 1).sum(dim=dims, keepdim=True, dtype=dtype)


def masked_mean(x: torch.Tensor, keep: torch.Tensor | None, dims) -> torch.Tensor:
    """Mean over `dims` of the visible sites (keep 1), float32 or wider."""
    dtype = torch.promote_types(x.dtype, torch.float32)
    if keep is None:
        return x.mean(dim=dims, keepdim=True, dtype=dtype)
    return (x * keep).sum(dim=dims, keepdim=True, dtype=dtype) / site_count(x, keep, dims, dtype)


def masked_amax(x: torch.Tensor, keep: torch.Tensor | None, dims) -> torch.Tensor:
    """Maximum over `dims` of the visible sites (keep 1)."""
    return (x if keep is None else x.masked_fill(keep == 0, float('-inf'))).amax(dim=dims, keepdim=True)


def masked_batch_norm(bn: nn.Module, x: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
    """A BatchNorm2d module on channels-last (N, H, W, C), statistics over the visible sites only (zeros at the
    others): the module itself runs on the (1, C, R, 1) tensor of the R visible sites, so running statistics,
    momentum and SyncBatchNorm behave as torch's."""
    if keep is None:
        return bn(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
    c = x.shape[-1]
    rows = keep.expand(*x.shape[:-1], 1).reshape(-1).nonzero().squeeze(1)
    # contiguous: on the transposed (1, C, R, 1) view, torch 2.14's CPU BatchNorm backward returns wrong gradients
    out = bn(x.reshape(-1, c).index_select(0, rows).t().contiguous()[None, :, :, None])[0, :, :, 0].t()
    return x.new_zeros(x.numel() // c, c).index_copy(0, rows, out.to(x.dtype)).view(x.shape)


class LRN(nn.LocalResponseNorm):
    """torch's LocalResponseNorm across channels of channels-last input, per site (a mask changes nothing)."""

    def forward(self, x: torch.Tensor, keep=None, dims=None) -> torch.Tensor:
        return super().forward(x.movedim(-1, 1)).movedim(1, -1)


class LN(nn.LayerNorm):
    """LayerNorm over the channels of each site (a mask changes nothing)."""

    def forward(self, x: torch.Tensor, keep=None, dims=None) -> torch.Tensor:
        return super().forward(x)


class BN(nn.Module):
    """BatchNorm over every site of the batch; under a mask over the visible sites only. The BatchNorm2d is a child
    (`bn`), so torch's convert_sync_batchnorm replaces it and the channels-last handling stays."""

    def __init__(self, dim: int, **kwargs):
        super().__init__()
        self.bn = nn.BatchNorm2d(dim, **kwargs)

    def forward(self, x: torch.Tensor, keep=None, dims=None) -> torch.Tensor:
        return masked_batch_norm(self.bn, x, keep)


class SE(SEModule):
    """timm's squeeze-excitation on channels-last input; the squeeze averages the visible sites (per sample/batch)."""

    def __init__(self, dim: int, rd_ratio: float = 1 / 16, **kwargs):
        super().__init__(dim, rd_ratio=rd_ratio, **kwargs)
        if self.add_maxpool:
            raise ValueError("SE add_maxpool=True: not the paper's SE (mean squeeze only)")

    def forward(self, x: torch.Tensor, keep=None, dims=(1, 2)) -> torch.Tensor:
        s = masked_mean(x, keep, dims).to(x.dtype).permute(0, 3, 1, 2)  # (N, C, 1, 1)
        s = self.gate(self.fc2(self.act(self.bn(self.fc1(s)))))
        return x * s.permute(0, 2, 3, 1)


class CBAM(CbamModule):
    """timm's CBAM on channels-last input, MLP with biases as the official CBAM: channel gate from the mean- and
    max-pooled visible sites, then the spatial gate (7×7 conv + BN on channel mean/max, zero at masked sites)."""

    spatial_grid = True  # convolves over the grid: MaskedConvNeXtV2's visible path cannot run it

    def __init__(self, dim: int, rd_ratio: float = 1 / 16, mlp_bias: bool = True, **kwargs):
        super().__init__(dim, rd_ratio=rd_ratio, mlp_bias=mlp_bias, **kwargs)
        if not isinstance(self.spatial.conv.aa, (nn.Identity, type(None))):
            raise ValueError('CBAM: an anti-aliased spatial conv is not CBAM')

    def forward(self, x: torch.Tensor, keep=None, dims=(1, 2)) -> torch.Tensor:
        ch = self.channel
        pooled = [p.to(x.dtype).permute(0, 3, 1, 2) for p in (masked_mean(x, keep, dims), masked_amax(x, keep, dims))]
        x = x * ch.gate(sum(ch.fc2(ch.act(ch.fc1(p))) for p in pooled)).permute(0, 2, 3, 1)
        maps = torch.cat([x.mean(dim=-1, keepdim=True), x.amax(dim=-1, keepdim=True)], dim=-1)  # (N, H, W, 2)
        maps = maps if keep is None else maps * keep  # the 7×7 conv sees zeros at masked sites
        sp = self.spatial.conv
        y = masked_batch_norm(sp.bn, sp.conv(maps.permute(0, 3, 1, 2)).permute(0, 2, 3, 1), keep)
        return x * self.spatial.gate(y)


def build_grn(cfg: dict | None, dim: int) -> nn.Module:
    """The module a ConvNeXt V2 block applies to its 4·dim-wide features, from dict(type=..., **options)
    (None: the paper's GRN); see the module docstring for the types and their options."""
    cfg = dict(DEFAULT if cfg is None else cfg)
    kind = cfg.pop('type', None)
    classes = dict(GRN=GRN, LRN=LRN, BN=BN, LN=LN, SE=SE, CBAM=CBAM)
    if kind not in TYPES:
        raise ValueError(f'grn type={kind!r}: expected one of {TYPES}')
    if kind == 'none':
        if cfg:
            raise ValueError(f"grn type='none' takes no options, got {sorted(cfg)}")
        return nn.Identity()
    if kind == 'LRN':
        cfg = dict(dict(size=5, alpha=5e-4, beta=.75, k=2.), **cfg)
        try:
            return LRN(**cfg)
        except TypeError as e:
            raise ValueError(f'grn type=LRN: {e}') from None
    if kind == 'LN':
        cfg.setdefault('eps', 1e-6)
    try:
        return classes[kind](dim, **cfg)
    except TypeError as e:
        raise ValueError(f'grn type={kind}: {e}') from None
