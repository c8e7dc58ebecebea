"""FCMAE's reconstruction loss on held-out images beside the loss of predicting each masked patch's mean: the bar a
trained decoder must clear. Under norm_pix_loss that baseline predicts 0 for the normalised target and scores its
mean square, var / (var + 1e-6) per patch (just under 1); without it, the patch's pixel variance."""
import torch
import torchvision.transforms as T
from mmengine.registry import MODELS
from PIL import Image

from .visualize import load_fcmae


@torch.no_grad()
def reconstruction_losses(cfg, checkpoint: str, images: list, size: int, seed: int = 0, batch: int = 32) -> dict:
    """Masked-patch loss of the FCMAE `checkpoint` and of the per-patch-mean predictor on the same images and masks
    (resized and centre-cropped to `size`, masks drawn from `seed`); also their ratio."""
    if not images:
        raise ValueError('reconstruction_losses: no images given')
    model = MODELS.build(cfg.model).eval()
    if size % model.patch_size:
        raise ValueError(f'reconstruction_losses: size {size} is not a multiple of the FCMAE patch size '
                         f'{model.patch_size}')
    load_fcmae(model, checkpoint)
    prepare = T.Compose([T.Resize(size, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(size),
                         T.PILToTensor()])
    generator = torch.Generator().manual_seed(seed)
    sums, patches = torch.zeros(2, dtype=torch.float64), 0.
    for i in range(0, len(images), batch):
        chunk = []
        for path in images[i:i + batch]:
            try:
                with Image.open(path) as im:
                    chunk.append(prepare(im.convert('RGB')))
            except (OSError, ValueError) as e:  # a held-out set is scored whole or not at all
                raise ValueError(f'reconstruction_losses: cannot read image {path}: {e}') from e
        x = model.data_preprocessor(dict(inputs=torch.stack(chunk)), False)['inputs']
        n, length = x.shape[0], (size // model.patch_size) ** 2
        keep = int(length * (1 - model.mask_ratio))  # as FCMAE.random_masking, from our own generator
        mask = torch.ones(n, length)
        mask.scatter_(1, torch.rand(n, length, generator=generator).argsort(1)[:, :keep], 0.)
        pred, _ = model(x, mode='predict', mask=mask)
        target = model.patchify(x).double()  # computed here, not by model.forward_loss, so that it checks that too
        mean = target.mean(-1, keepdim=True)
        if model.norm_pix_loss:  # the official target: per-patch mean 0, variance 1 (unbiased, + 1e-6)
            target = (target - mean) / (target.var(dim=-1, keepdim=True) + 1e-6) ** .5
            mean = torch.zeros_like(mean)
        for k, p in enumerate((pred.double(), mean)):
            sums[k] += ((p - target).pow(2).mean(-1) * mask).sum()
        patches += float(mask.sum())
    loss, baseline = (sums / patches).tolist()
    return dict(loss=round(loss, 4), patch_mean_loss=round(baseline, 4), ratio=round(loss / baseline, 3),
                images=len(images), masked_patches=int(patches), size=size, norm_pix_loss=model.norm_pix_loss)
