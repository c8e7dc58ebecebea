"""FCMAE, the fully convolutional masked autoencoder (ConvNeXt V2 paper §3): random 32-px patch masks, the masked
ConvNeXt V2 encoder, a one-block ConvNeXt V2 decoder and the norm-pix MSE loss on masked patches."""
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModel
from timm.layers import trunc_normal_

from backbone.convnextv2 import Block, ConvNeXtV2
from backbone.masked import PATCH, MaskedConvNeXtV2, check_image_size, upsample_mask

from .decoders import DECODERS, UNET_STRIDE, TransformerDecoder, UNetDecoder

INITS = ('trunc02', 'official')
IMAGENET_PREPROCESSOR = dict(type='ImgDataPreprocessor', mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
                             bgr_to_rgb=False)  # pretrain/data.py yields RGB uint8 CHW tensors (PIL decoding)


class FCMAE(BaseModel):
    """Masked encoder (`encoder.*` = `ConvNeXtV2` names) → 1×1 `proj` → `mask_token` at masked sites → `decoder`
    blocks → 1×1 `pred` to patch²·3 pixels, the layout of the official models/fcmae.py.

    Args:
        patch_size: the mask patch; must be 32, the encoder's stride, since the decoder predicts one patch per site.
        mask_ratio: fraction of patches masked; each sample keeps int(L·(1 − mask_ratio)) patches.
        grn_pooling, path, with_cp: see `MaskedConvNeXtV2` ('sample' / 'batch'; 'visible' / 'dense'; activation
            checkpointing of the encoder blocks).
        init: 'trunc02' (default): trunc-normal(.02) on every conv/linear weight, zero biases, as the dense
            ConvNeXtV2; 'official': the released PyTorch `FCMAE._init_weights`, see `init_official`. The paper's
            numbers come from its JAX code (not released), so neither is known to be the paper's.
        block: 'v2', or 'v1' for the co-design ablation (§4: V1 + FCMAE); encoder and decoder blocks alike.
        sparse: True (paper): the sparse encoder above. False: Table 1's "without sparse conv": masked patches are
            zeroed in the (normalised) input image only and the same weights run the plain dense `ConvNeXtV2`
            forward, so features computed over masked regions leak into visible outputs (`path` is then unused).
        decoder_type: 'convnext' (paper: `decoder_depth` ConvNeXt blocks on the 1/32 grid), 'unet' / 'unet_noskip'
            (hierarchical, with / without skips from the encoder stages) or 'transformer' (pre-norm ViT blocks over
            the 1/32 grid tokens): Table 1's decoder ablation, see pretrain/decoders.py. Depth and width apply to each.
        grn: what encoder and ConvNeXt decoder blocks have in GRN's place (None: the paper's GRN); backbone/grn.py.
        init_cfg: dict(type='Pretrained', checkpoint=P) loads P into the encoder through backbone.checkpoint.
    """

    def __init__(self, arch: str | dict = 'atto', patch_size: int = 32, mask_ratio: float = 0.6,
                 decoder_depth: int = 1, decoder_embed_dim: int = 512, norm_pix_loss: bool = True,
                 grn_pooling: str = 'sample', path: str = 'visible', with_cp: bool = False, init: str = 'trunc02',
                 block: str = 'v2', sparse: bool = True, decoder_type: str = 'convnext', grn: dict | None = None,
                 data_preprocessor: dict | nn.Module | None = None, init_cfg: dict | None = None, in_channels: int = 3):
        super().__init__(data_preprocessor=IMAGENET_PREPROCESSOR if data_preprocessor is None else data_preprocessor)
        if patch_size != PATCH:
            raise ValueError(f'patch_size={patch_size}: FCMAE masks and predicts one patch per site of the last '
                             f'stage, so it must equal the encoder stride {PATCH}')
        if not 0 < mask_ratio < 1:
            raise ValueError(f'mask_ratio={mask_ratio}: expected 0 < mask_ratio < 1 (the loss averages masked patches)')
        self.patch_size, self.mask_ratio, self.norm_pix_loss = patch_size, mask_ratio, norm_pix_loss
        self.in_channels = in_channels
        if init not in INITS:
            raise ValueError(f'init={init!r}: expected one of {INITS}')
        if decoder_type not in DECODERS:
            raise ValueError(f'decoder_type={decoder_type!r}: expected one of {DECODERS}')
        if init == 'official' and decoder_type != 'convnext':
            raise ValueError(f"init='official' is the released code's init of its ConvNeXt decoder; decoder_type="
                             f"{decoder_type!r} needs init='trunc02'")
        if not isinstance(decoder_depth, int) or decoder_depth < 0 or not isinstance(decoder_embed_dim, int) \
                or decoder_embed_dim < 1:
            raise ValueError(f'decoder_depth={decoder_depth!r}, decoder_embed_dim={decoder_embed_dim!r}: expected '
                             'integers >= 0 and >= 1')
        if not sparse and grn_pooling != 'sample':
            raise ValueError(f'grn_pooling={grn_pooling!r} is an option of the sparse encoder; sparse=False runs '
                             "the dense ConvNeXtV2, whose GRN pools per sample ('sample')")
        self.sparse, self.decoder_type = sparse, decoder_type
        self.encoder = MaskedConvNeXtV2(arch, in_channels, grn_pooling=grn_pooling, path=path, with_cp=with_cp,
                                        init_cfg=init_cfg, block=block, grn=grn)
        self.proj = nn.Conv2d(self.encoder.dims[-1], decoder_embed_dim, kernel_size=1)
        self.mask_token = nn.Parameter(torch.zeros(1, decoder_embed_dim, 1, 1))
        if decoder_type == 'convnext':
            self.decoder = nn.Sequential(*[Block(decoder_embed_dim, block=block, grn=grn)
                                           for _ in range(decoder_depth)])
        elif decoder_type == 'transformer':
            self.decoder = TransformerDecoder(decoder_embed_dim, decoder_depth)
        else:
            self.decoder = UNetDecoder(decoder_embed_dim, decoder_depth, self.encoder.dims,
                                       skip=decoder_type == 'unet', block=block)
        if decoder_type.startswith('unet'):  # 4×4 pixels per 1/4 site, rearranged into 32-px patches
            self.pred = nn.Conv2d(decoder_embed_dim // 8, UNET_STRIDE ** 2 * in_channels, kernel_size=1)
        else:
            self.pred = nn.Conv2d(decoder_embed_dim, patch_size ** 2 * in_channels, kernel_size=1)
        self.init = init
        self._init_decoder() if init == 'trunc02' else self.init_official()

    def init_weights(self):
        """What mmengine's Runner calls after construction: the encoder loads its init_cfg checkpoint or re-draws
        its own .02 init; `init='official'` is then applied to it again (unless it was loaded), so the chosen init is
        what training starts from. Decoder, `proj`, `pred` and mask token keep their init from construction."""
        super().init_weights()
        if self.init == 'official' and not self._encoder_pretrained():
            self.init_official(decoder=False)

    def _encoder_pretrained(self) -> bool:
        init_cfg = self.encoder.init_cfg
        return isinstance(init_cfg, dict) and init_cfg.get('type') == 'Pretrained'

    def _init_decoder(self):
        """trunc-normal(.02) conv/linear weights and zero biases, mask token normal(.02) (the encoder inits itself)."""
        for m in [self.proj, self.pred, *self.decoder.modules()]:
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
                trunc_normal_(m.weight, std=.02)
                if m.bias is not None:  # CBAM's spatial conv in place of GRN has none
                    nn.init.zeros_(m.bias)
        nn.init.normal_(self.mask_token, std=.02)

    def init_official(self, decoder: bool = True):
        """The released models/fcmae.py `_init_weights` (applied over the sparse encoder's own .02 init): timm's
        trunc_normal_ at its default std 1 (cut at ±2) on the stem, the encoder's depthwise convs and MLP linears,
        `proj`, `pred` and the decoder's depthwise conv; .02 on the encoder's downsampling convs; zero biases; the
        decoder's nn.Linear MLP keeps PyTorch's default init (that code skips nn.Linear); mask token normal(.02).
        decoder=False: the encoder only."""
        enc = self.encoder
        downsample = {id(enc.downsample_layers[i][1]) for i in range(1, 4)}
        rest = [self.proj, self.pred, *self.decoder.modules()] if decoder else []
        convs = [m for m in [*enc.modules(), *rest] if isinstance(m, nn.Conv2d)]
        linears = [m for m in enc.modules() if isinstance(m, nn.Linear)]
        for m in convs + linears:
            trunc_normal_(m.weight, std=.02 if id(m) in downsample else 1.)
            if m.bias is not None:  # CBAM's spatial conv in place of GRN has none
                nn.init.zeros_(m.bias)
        if decoder:
            for block in self.decoder:
                block.pwconv1.reset_parameters(), block.pwconv2.reset_parameters()
            nn.init.normal_(self.mask_token, std=.02)

    def patchify(self, imgs: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, L, p·p·C), patches in row-major order, pixels ordered (row, col, channel)."""
        n, c, _, _ = imgs.shape
        h, w = check_image_size(imgs.shape)
        p = self.patch_size
        x = imgs.reshape(n, c, h, p, w, p).permute(0, 2, 4, 3, 5, 1)  # (N, h, w, p, p, C)
        return x.reshape(n, h * w, p * p * c)

    def unpatchify(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        """(N, L, p·p·C) -> (N, C, h, w); h, w: the image size in pixels (the patch-grid size is accepted too)."""
        p, (n, length, dim) = self.patch_size, x.shape
        gh, gw = (h, w) if h * w == length else (h // p, w // p)
        if gh * gw != length or dim % (p * p):
            raise ValueError(f'unpatchify: {tuple(x.shape)} does not tile a {h}x{w} image with {p}-px patches')
        x = x.reshape(n, gh, gw, p, p, dim // (p * p)).permute(0, 5, 1, 3, 2, 4)  # (N, C, h, p, w, p)
        return x.reshape(n, -1, gh * p, gw * p)

    def random_masking(self, n: int, h: int, w: int, device=None) -> torch.Tensor:
        """A (N, h/32·w/32) float mask, 1 = masked, keeping int(L·(1 − mask_ratio)) random patches per sample."""
        gh, gw = check_image_size((n, self.in_channels, h, w))
        length = gh * gw
        if not 0 < int(length * (1 - self.mask_ratio)) < length:
            raise ValueError(f'mask_ratio={self.mask_ratio} on a {gh}x{gw} patch grid ({h}x{w} px) keeps '
                             f'{int(length * (1 - self.mask_ratio))} of {length} patches; expected at least one '
                             'visible and one masked')
        ids_shuffle = torch.argsort(torch.rand(n, length, device=device), dim=1)
        mask = torch.ones(n, length, device=device)
        mask[:, :int(length * (1 - self.mask_ratio))] = 0
        return torch.gather(mask, 1, torch.argsort(ids_shuffle, dim=1))  # undo the shuffle

    def forward_encoder(self, imgs: torch.Tensor, mask: torch.Tensor, return_stages: bool = False):
        """(N, C, H, W), mask (N, L) -> (N, C_enc, H/32, W/32), zero at masked patches with the sparse encoder;
        return_stages: the list of the 4 stage outputs instead (the UNet decoder's skips)."""
        if self.sparse:
            return self.encoder(imgs, mask, return_stages=True) if return_stages else self.encoder(imgs, mask)
        stages = self.forward_dense_encoder(imgs, mask)
        return stages if return_stages else stages[-1]

    def forward_dense_encoder(self, imgs: torch.Tensor, mask: torch.Tensor) -> list:
        """Table 1's encoder without sparse conv: masked 32-px patches zeroed in the input image, then the plain
        `ConvNeXtV2` stages on the encoder's weights; the 4 stage outputs, nothing masked after the input."""
        n = imgs.shape[0]
        h, w = check_image_size(imgs.shape)
        if mask.shape[0] != n or mask[0].numel() != h * w:
            raise ValueError(f'mask of shape {tuple(mask.shape)} for input {tuple(imgs.shape)}: expected '
                             f'({n}, {h * w}), one entry per {PATCH}-px patch')
        keep = 1 - upsample_mask(mask.reshape(n, h * w).to(imgs.dtype), h, w, PATCH).permute(0, 3, 1, 2)
        x, stages = (imgs * keep).contiguous(memory_format=torch.channels_last), []
        for i in range(4):
            x = ConvNeXtV2.forward_stage(self.encoder, i, x)
            stages.append(x)
        return stages

    def forward_decoder(self, x: torch.Tensor, mask: torch.Tensor, stages: list | None = None) -> torch.Tensor:
        """Latent (N, C_enc, h, w) -> predicted pixels (N, p·p·3, h, w); masked sites start from the mask token.
        stages: the encoder's stage outputs, for the UNet decoder's skips."""
        x = self.proj(x)
        n, _, h, w = x.shape
        mask = mask.reshape(n, 1, h, w).to(x.dtype)
        x = x * (1 - mask) + self.mask_token.to(x.dtype) * mask
        if not self.decoder_type.startswith('unet'):
            return self.pred(self.decoder(x))
        pixels = F.pixel_shuffle(self.pred(self.decoder(x, stages)), UNET_STRIDE)  # (N, C, H, W)
        return self.patchify(pixels).transpose(1, 2).reshape(n, -1, h, w)  # (N, p·p·C, h, w), as the others

    def forward_loss(self, imgs: torch.Tensor, pred: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """MSE to the (per-patch normalised) target pixels, averaged over masked patches only."""
        if pred.dim() == 4:
            pred = pred.flatten(2).transpose(1, 2)  # (N, p·p·3, h, w) -> (N, L, p·p·3)
        target = self.patchify(imgs)
        if self.norm_pix_loss:  # unbiased variance + 1e-6, as the official code
            mean, var = target.mean(dim=-1, keepdim=True), target.var(dim=-1, keepdim=True)
            target = (target - mean) / (var + 1e-6) ** .5
        dtype = torch.promote_types(pred.dtype, torch.float32)  # bf16 predictions: loss in float32
        loss = (pred.to(dtype) - target.to(dtype)).pow(2).mean(dim=-1)  # (N, L), loss per patch
        mask = mask.reshape(loss.shape).to(loss.dtype)
        return (loss * mask).sum() / mask.sum()

    def forward(self, inputs: torch.Tensor | list, data_samples=None, mode: str = 'loss',
                mask: torch.Tensor | None = None):
        """mode 'loss': dict(loss=...); 'predict' / 'tensor': (pred (N, L, p·p·3), mask (N, L)). `mask` fixes the
        mask (1 = masked) instead of drawing one."""
        imgs = torch.stack(list(inputs)) if isinstance(inputs, (list, tuple)) else inputs
        if mask is None:
            mask = self.random_masking(imgs.shape[0], imgs.shape[-2], imgs.shape[-1], device=imgs.device)
        mask = mask.reshape(imgs.shape[0], -1)
        if self.decoder_type == 'unet':
            stages = self.forward_encoder(imgs, mask, return_stages=True)
            pred = self.forward_decoder(stages[-1], mask, stages)
        else:
            pred = self.forward_decoder(self.forward_encoder(imgs, mask), mask)
        if mode == 'loss':
            return dict(loss=self.forward_loss(imgs, pred, mask))
        if mode in ('predict', 'tensor'):
            return pred.flatten(2).transpose(1, 2), mask
        raise ValueError(f'FCMAE.forward: mode={mode!r}, expected loss, predict or tensor')
