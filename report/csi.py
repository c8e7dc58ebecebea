"""The class selectivity index (ConvNeXt V2 appendix C, Fig. 7; Morcos et al. 2018) of every channel of every residual
block's output, for checkpoints of any stage and format on a labeled ImageNet-style folder: per-layer histograms as
JSON and a plot. CSI near 1: the channel responds to one class; near 0: alike to all (class-generic)."""
import json
from pathlib import Path

import torch

from pretrain.data import find_images, list_classes

from .feature_collapse import image_batches, model_from_checkpoint, readable_images
from .plots import plot_histograms

EPS = 1e-7  # Leavitt & Morcos 2020 (arXiv 2003.01262) add ε to the denominator: a dead channel gets 0, not 0/0
BINS = 20  # histogram bins over [0, 1]


def selectivity_index(means: torch.Tensor) -> torch.Tensor:
    """(K classes, C channels) non-negative class-conditional mean activations -> (C,) CSI = (μ_max − μ_−max) /
    (μ_max + μ_−max + ε), μ_max the largest class mean of a channel, μ_−max the mean of the other K − 1."""
    if means.dim() != 2 or means.shape[0] < 2:
        raise ValueError(f'selectivity_index: expected (classes >= 2, channels) means, got {tuple(means.shape)}')
    if (means < 0).any():
        raise ValueError('selectivity_index: the index is defined on non-negative activity (Morcos et al. 2018); '
                         f'got a class mean of {means.min().item():.3g}')
    mu_max = means.max(dim=0).values
    mu_rest = (means.sum(dim=0) - mu_max) / (means.shape[0] - 1)
    return (mu_max - mu_rest) / (mu_max + mu_rest + EPS)


def channel_activity(out: torch.Tensor) -> torch.Tensor:
    """A residual block's output (N, C, H, W) -> (N, C) activity: rectified (the index needs non-negative activity;
    ConvNeXt has no ReLU, so negative responses count as no response) and averaged over the map, as Morcos et al.
    average a convolutional unit's feature map."""
    return out.float().clamp(min=0).mean(dim=(2, 3))


@torch.no_grad()
def class_means(model, batches, num_classes: int) -> tuple[list[str], list[torch.Tensor]]:
    """Per block (`stages.s.j`), the (K, C) class-conditional mean activity over `batches` of (images, labels)."""
    blocks = [(f'stages.{s}.{j}', b) for s, stage in enumerate(model.stages) for j, b in enumerate(stage)]
    current, sums = {}, None
    counts = torch.zeros(num_classes, 1, dtype=torch.float64)
    handles = [b.register_forward_hook(lambda _m, _i, out, name=name: current.__setitem__(name, channel_activity(out)))
               for name, b in blocks]
    try:
        model.eval()
        for x, labels in batches:
            model(x)
            if sums is None:
                sums = [torch.zeros(num_classes, current[name].shape[1], dtype=torch.float64) for name, _ in blocks]
            for k, (name, _) in enumerate(blocks):
                sums[k].index_add_(0, labels, current[name].double())
            counts.index_add_(0, labels, torch.ones(len(labels), 1, dtype=torch.float64))
    finally:
        for h in handles:
            h.remove()
    if sums is None or (counts == 0).any():
        raise ValueError(f'class_means: classes without images: {(counts[:, 0] == 0).nonzero()[:, 0].tolist()}')
    return [name for name, _ in blocks], [s / counts for s in sums]


def labeled_images(folder: str, size: int, max_images: int) -> tuple[list, torch.Tensor, list, int]:
    """(transformed images, labels, class names, skipped) of `folder/<class>/<image at any depth>`; at most
    max_images // K per class (at least 1), the first in name order, so every class is represented."""
    classes = list_classes(Path(folder))
    if len(classes) < 2:
        raise ValueError(f'{folder}: the class selectivity index needs >= 2 class folders, found {classes}')
    per_class, images, labels, skipped = max(1, max_images // len(classes)), [], [], 0
    for k, name in enumerate(classes):
        files = find_images(Path(folder) / name)[:per_class]
        if not files:
            raise ValueError(f'class folder {Path(folder) / name} holds no images')
        try:
            got = readable_images(files, size)
        except ValueError as e:
            raise ValueError(f'class folder {Path(folder) / name}: {e}') from None
        images += got
        labels += [k] * len(got)
        skipped += len(files) - len(got)
    return images, torch.tensor(labels), classes, skipped


def labeled_batches(images: list, labels: torch.Tensor, batch: int = 16):
    for i, x in enumerate(image_batches(images, batch)):
        yield x, labels[i * batch:i * batch + len(x)]


def analyze_csi(checkpoints: list, images: str, out: str, size: int = 224, max_images: int = 1000,
                labels: list | None = None, trusted: bool = False) -> dict:
    """CSI of every channel of every block output for each checkpoint on the same labeled images; writes csi.json
    (per layer: mean, median, histogram over [0, 1] in BINS bins, the per-channel values) and csi.png into `out`."""
    pixels, targets, classes, skipped = labeled_images(images, size, max_images)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for i, path in enumerate(checkpoints):
        model, fmt = model_from_checkpoint(path, trusted)
        names, means = class_means(model, labeled_batches(pixels, targets), len(classes))
        layers = []
        for name, m in zip(names, means):
            csi = selectivity_index(m)
            layers.append(dict(layer=name, mean=round(csi.mean().item(), 5), median=round(csi.median().item(), 5),
                               dead=int((m.max(dim=0).values == 0).sum()),
                               histogram=torch.histc(csi.float(), BINS, 0, 1).int().tolist(),
                               csi=[round(v, 4) for v in csi.tolist()]))
        label = labels[i] if labels else Path(path).stem
        results.append(dict(checkpoint=str(path), label=label, format=fmt, arch=model.arch, block=model.block,
                            layers=layers))
        print(f'analyze_features: {label}: CSI per block (mean) ' + ' '.join(f"{r['mean']:.2f}" for r in layers))
    summary = dict(measure='csi', images=len(pixels), skipped=skipped, classes=len(classes), size=size,
                   activity='block output, clamped at 0, averaged over H×W', bins=BINS, checkpoints=results)
    (out / 'csi.json').write_text(json.dumps(summary, indent=1))
    panels = {}  # {layer: {checkpoint label: values}}; checkpoints of other depths fill the panels they have
    for c in results:
        for layer in c['layers']:
            panels.setdefault(layer['layer'], {})[c['label']] = layer['csi']
    plot_histograms(panels, out / 'csi.png', bins=BINS, value_range=(0, 1), xlabel='class selectivity index',
                    title='Class selectivity per residual block (ConvNeXt V2 Fig. 7)')
    return summary
