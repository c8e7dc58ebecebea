"""FCMAE reconstructions as a PNG grid per image: original | masked input | reconstruction | reconstruction with the
visible patches pasted back (asked of the official code:
github.com/facebookresearch/ConvNeXt-V2/issues/42); `python tools/visualize_fcmae.py` is the command line."""
import os
import os.path as osp

import torch
import torchvision.transforms as T
from mmengine.registry import MODELS
from PIL import Image

from backbone.checkpoint import CheckpointError, load_pretrained, pick_state_dict, safe_load

DECODER = ('proj', 'mask_token', 'decoder', 'pred')  # FCMAE parameters outside the encoder


def load_fcmae(model, path: str):
    """The encoder through the suite's strict loader (any format); proj/mask_token/decoder/pred by name."""
    ckpt = safe_load(path)
    load_pretrained(model.encoder, ckpt)
    sd = {k.removeprefix('module.'): v for k, v in pick_state_dict(ckpt)[0].items()}
    decoder = {k: v for k, v in sd.items() if k.split('.')[0] in DECODER}
    missing = [k for k in model.state_dict() if k.split('.')[0] in DECODER and k not in decoder]
    if missing:
        raise CheckpointError(f'{path}: {len(missing)} decoder keys missing ({", ".join(missing[:4])}, ...): '
                              'reconstructions need an FCMAE training checkpoint, not encoder-only weights')
    model.load_state_dict(decoder, strict=False)


@torch.no_grad()
def reconstruct(model, img: torch.Tensor, seed: int = 0) -> list[torch.Tensor]:
    """uint8 (3, H, W) -> the four uint8 panels. Norm-pix predictions are de-normalised with each patch's own mean
    and variance, as MAE's demo does (the model predicts only the normalised shape)."""
    x = model.data_preprocessor(dict(inputs=img[None]), False)['inputs']
    (_, _, h, w), p = x.shape, model.patch_size
    torch.manual_seed(seed)
    pred, mask = model(x, mode='predict', mask=model.random_masking(1, h, w))
    if model.norm_pix_loss:
        target = model.patchify(x)
        pred = pred * (target.var(dim=-1, keepdim=True) + 1e-6) ** .5 + target.mean(dim=-1, keepdim=True)
    mean = getattr(model.data_preprocessor, 'mean', torch.zeros(3, 1, 1))
    std = getattr(model.data_preprocessor, 'std', torch.ones(3, 1, 1))
    recon = (model.unpatchify(pred, h, w)[0] * std + mean).clamp(0, 255)  # normalised -> pixels
    m = mask.reshape(h // p, w // p).repeat_interleave(p, 0).repeat_interleave(p, 1)[None]  # (1, H, W), 1 = masked
    orig = img.float()
    panels = [orig, orig * (1 - m) + 127 * m, recon, orig * (1 - m) + recon * m]
    return [t.round().to(torch.uint8) for t in panels]


def grid(panels: list[torch.Tensor], gap: int = 4) -> Image.Image:
    """Panels side by side with white gaps."""
    sep = torch.full((3, panels[0].shape[1], gap), 255, dtype=torch.uint8)
    row = torch.cat([t for panel in panels for t in (panel, sep)][:-1], dim=2)
    return Image.fromarray(row.permute(1, 2, 0).numpy())


def visualize(cfg, checkpoint: str, images: list, out_dir: str, size: int | None = None, seed: int = 0) -> list:
    """Write IMAGE_fcmae.png grids into out_dir for an FCMAE config and training checkpoint; the paths written.
    Images are resized and centre-cropped to `size` (default: the config's training crop)."""
    size = size or cfg.get('train_dataloader', {}).get('dataset', {}).get('pipeline', {}).get('size', 224)
    model = MODELS.build(cfg.model).eval()
    load_fcmae(model, checkpoint)
    prepare = T.Compose([T.Resize(size, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(size),
                         T.PILToTensor()])
    os.makedirs(out_dir, exist_ok=True)
    written = []
    for path in images:
        with Image.open(path) as im:
            img = prepare(im.convert('RGB'))
        out = osp.join(out_dir, osp.splitext(osp.basename(path))[0] + '_fcmae.png')
        grid(reconstruct(model, img, seed)).save(out)
        written.append(out)
        print(f'visualize_fcmae: wrote {out}')
    return written
