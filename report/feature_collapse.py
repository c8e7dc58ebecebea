"""The paper's feature-collapse analysis (ConvNeXt V2 §4, Figs. 3 and 4): the mean pairwise cosine distance between
the channel maps of every block's dimension-expansion MLP output, per layer, for checkpoints of any stage and format.
Low distance = redundant, collapsed channels (the paper finds it in V1 + FCMAE, not in V2 + FCMAE)."""
import json
from pathlib import Path

import torch
import torch.nn.functional as F
from matplotlib.figure import Figure

from backbone.checkpoint import block_version, convert, load_pretrained, safe_load
from backbone.convnextv2 import ConvNeXtV2, infer_arch
from pretrain.data import IMAGE_EXTENSIONS, eval_transform, load_rgb

# the code the toy ablation's numbers depend on (docs/results/feature_collapse_toy.md), and where its plots go
PATHS = ('backbone', 'pretrain', 'toydata', 'report/feature_collapse.py', 'benchmarks/feature_collapse.sh')
FIGURES = {'feature_collapse.png': 'docs/figures/feature_collapse_toy.png',
           'activations.png': 'docs/figures/activations_toy.png'}


def cosine_distance(x: torch.Tensor) -> torch.Tensor:
    """(N, H, W, C) activations -> (N,) distances (1/C²) Σ_i Σ_j (1 − cos(X_i, X_j)) / 2, X_i the i-th channel
    map flattened to an HW-vector (a channel that is zero everywhere counts as orthogonal to every channel)."""
    v = F.normalize(x.flatten(1, 2).transpose(1, 2).double(), dim=-1)  # (N, C, HW), unit channel maps
    cos = v @ v.transpose(1, 2)  # (N, C, C)
    return ((1 - cos) / 2).mean(dim=(1, 2))


# where in each block the activation X is taken: the 4C-wide expansion MLP after GRN (default, what the paper's
# "dimension-expansion MLP layers" most plausibly means for V2) or before it (after GELU), or the block's C-wide
# residual output; V1 blocks have no GRN, so 'after_grn' and 'mlp_act' coincide there
POINTS = ('after_grn', 'mlp_act', 'block_out')


def expansion_layers(model: ConvNeXtV2, point: str = 'after_grn') -> list[tuple[str, torch.nn.Module]]:
    """(name, module) per block whose output is X at `point` (see POINTS): `grn` (the identity in a V1 block, so the
    same hook serves both), `act` (GELU) or the block itself (output channels-first)."""
    if point not in POINTS:
        raise ValueError(f'point={point!r}: expected one of {POINTS}')
    attr = {'after_grn': 'grn', 'mlp_act': 'act'}.get(point)
    return [(f'stages.{s}.{j}', getattr(block, attr) if attr else block)
            for s, stage in enumerate(model.stages) for j, block in enumerate(stage)]


@torch.no_grad()
def layer_distances(model: ConvNeXtV2, batches, point: str = 'after_grn') -> tuple[list[str], torch.Tensor, dict]:
    """Per-layer distance at `point` averaged over every image of `batches` (iterable of (N, 3, H, W) tensors); also
    the first image's activations per layer (H, W, C) for the activation grid."""
    layers, sums, first, count = expansion_layers(model, point), None, {}, 0
    current, channels_first = {}, point == 'block_out'

    def keep(name, out):
        current[name] = out.permute(0, 2, 3, 1) if channels_first else out  # (N, H, W, C)
    handles = [m.register_forward_hook(lambda _m, _i, out, name=name: keep(name, out)) for name, m in layers]
    try:
        model.eval()
        for x in batches:
            model(x)
            d = torch.stack([cosine_distance(current[name].float()).sum() for name, _ in layers])
            sums = d if sums is None else sums + d
            if not first:
                first = {name: current[name][0].float() for name, _ in layers}
            count += x.shape[0]
    finally:
        for h in handles:
            h.remove()
    if not count:
        raise ValueError('layer_distances: no images')
    return [name for name, _ in layers], sums / count, first


def model_from_checkpoint(path: str, trusted: bool = False) -> tuple[ConvNeXtV2, str]:
    """A headless ConvNeXt (V1 or V2, size inferred from the weights) strictly loaded from a checkpoint of any stage
    or format; returns it with the format name."""
    ckpt = safe_load(path, trusted)
    sd, fmt, _ = convert(ckpt)
    block = block_version(sd) or 'v2'
    model = ConvNeXtV2(infer_arch(sd, block), block=block, out_indices=(3,))
    load_pretrained(model, ckpt, may_lack=('norm3.*',))
    return model, fmt


def list_images(folder: str, limit: int) -> list[Path]:
    files = sorted(p for p in Path(folder).rglob('*') if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise FileNotFoundError(f'{folder}: no images (extensions {IMAGE_EXTENSIONS}) at any depth')
    return files[:limit]


def readable_images(files: list, size: int) -> list:
    """The evaluation-transformed images; an unreadable file is named in a warning and left out."""
    transform, images = eval_transform(size), []
    for f in files:
        try:
            images.append(transform(load_rgb(str(f))))
        except (OSError, ValueError, SyntaxError) as e:  # PIL.UnidentifiedImageError is an OSError
            print(f'analyze_features: skipped unreadable image {f} ({type(e).__name__}: {e})')
    if not images:
        raise ValueError(f'none of the {len(files)} images is readable')
    return images


def image_batches(images: list, batch: int = 16):
    for i in range(0, len(images), batch):
        yield torch.stack(images[i:i + batch])


def plot_distances(results: list, path: Path) -> None:
    fig = Figure(figsize=(6, 3.5))
    ax = fig.add_subplot()
    for r in results:
        ax.plot(range(1, len(r['distance']) + 1), r['distance'], marker='.', label=r['label'])
    ax.set(xlabel='block (expansion MLP layer)', ylabel='mean cosine distance', ylim=(0, None),
           title='Feature cosine distance per layer (ConvNeXt V2 Fig. 4)')
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def plot_activations(acts: dict, path: Path, channels: int = 16) -> None:
    """Fig. 3: the first `channels` channel maps of one layer, a row per checkpoint."""
    fig = Figure(figsize=(channels * 0.8, 0.9 * len(acts) + 0.3))
    for row, (label, x) in enumerate(acts.items()):
        for c in range(min(channels, x.shape[-1])):
            ax = fig.add_subplot(len(acts), channels, row * channels + c + 1)
            ax.imshow(x[..., c].numpy(), cmap='viridis')
            ax.set_xticks([]), ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(label, fontsize=6)
    fig.savefig(path, dpi=120)


def analyze(checkpoints: list, images: str, out: str, size: int = 224, max_images: int = 1000,
            grid_layer: str | None = None, labels: list | None = None, trusted: bool = False,
            point: str = 'after_grn') -> dict:
    """Distances per layer at `point` (POINTS) for each checkpoint on the same images; writes feature_collapse.json,
    .png and the activation grid (layer `grid_layer`, default the last block of stage 2) into `out`."""
    if point not in POINTS:
        raise ValueError(f'point={point!r}: expected one of {POINTS}')
    files, out = list_images(images, max_images), Path(out)
    pixels = readable_images(files, size)
    out.mkdir(parents=True, exist_ok=True)
    results, acts = [], {}
    for i, path in enumerate(checkpoints):
        model, fmt = model_from_checkpoint(path, trusted)
        names, dist, first = layer_distances(model, image_batches(pixels), point)
        label = labels[i] if labels else Path(path).stem
        layer = grid_layer or f'stages.2.{model.depths[2] - 1}'
        if layer not in first:
            raise KeyError(f'--grid-layer {layer!r}: expected one of {names[0]} ... {names[-1]}')
        acts[label] = first[layer]
        results.append(dict(checkpoint=str(path), label=label, format=fmt, arch=model.arch, block=model.block,
                            layers=names, distance=[round(float(d), 5) for d in dist],
                            mean=round(float(dist.mean()), 5)))
        print(f'analyze_features: {label}: mean distance {results[-1]["mean"]:.4f} over {len(names)} layers')
    summary = dict(images=len(pixels), skipped=len(files) - len(pixels), size=size, point=point,
                   grid_layer=grid_layer or 'stages.2.<last>', checkpoints=results)
    (out / 'feature_collapse.json').write_text(json.dumps(summary, indent=1))
    plot_distances(results, out / 'feature_collapse.png')
    plot_activations(acts, out / 'activations.png')
    return summary


def stage_span(c: dict, stage: int = 2) -> tuple[str, str]:
    """('first–last block number', 'lowest–highest distance') of one stage's layers of an analyzed checkpoint."""
    if 'stage_span' in c:  # carried over from an earlier run's table
        return tuple(c['stage_span'])
    idx = [i for i, name in enumerate(c['layers']) if name.startswith(f'stages.{stage}.')]
    d = [c['distance'][i] for i in idx]
    return f'{idx[0] + 1}–{idx[-1] + 1}', f'{min(d):.3f}–{max(d):.3f}'


def layerscale(path: str) -> str | None:
    """A V1 checkpoint's LayerScale |γ| (mean per block) as 'lowest–highest'; None for V2 (no LayerScale)."""
    model, _ = model_from_checkpoint(path)
    g = [b.gamma.abs().mean().item() for stage in model.stages for b in stage if getattr(b, 'gamma', None) is not None]
    return f'{min(g):.2g}–{max(g):.2g}' if g else None


def collapse_markdown(summary: dict, scales: dict) -> tuple[str, str]:
    """The results page of benchmarks/feature_collapse.sh (distances per checkpoint, plots) and its headline;
    scales: {label: V1 LayerScale |γ| range}."""
    blocks = stage_span(summary['checkpoints'][0])[0]
    rows = [[c['label'], f"{c['mean']:.3f}", stage_span(c)[1]] for c in summary['checkpoints']]
    header = ['| checkpoint | mean distance | stage 2 blocks (' + blocks + ') |', '|---|---|---|']
    md = ('# Feature collapse at toy scale (paper §4, Fig. 4)\n\nThe paper\'s feature cosine distance per layer '
          f"(`tools/analyze_features.py`) on {summary['images']} toy val images at {summary['size']} px, for atto "
          'pre-trained with FCMAE with V2 blocks and with V1 blocks, beside their random inits.\n\n'
          '![feature cosine distance per layer, toy runs](../figures/feature_collapse_toy.png)\n\n'
          + '\n'.join(header + ['| ' + ' | '.join(r) + ' |' for r in rows])
          + ''.join(f'\n\n{label}: LayerScale |γ| (mean per block) {r} (1e-6 at init).'
                    for label, r in scales.items() if r)
          + '\n\nActivations of the last stage-2 block (paper Fig. 3), first image:\n\n'
          '![activation grid, toy runs](../figures/activations_toy.png)')
    headline = 'mean cosine distance: ' + '; '.join(f"{c['label']} {c['mean']:.3f}" for c in summary['checkpoints'])
    return md, headline


def publish(analysis: str, command: str, note: str = '', root: Path | None = None) -> Path:
    """Write an analyze() output folder as docs/results/feature_collapse_toy.md, its plots into docs/figures."""
    from .stamp import ROOT, write_results  # here, so that `python -m report.stamp` finds it not yet imported
    analysis, root = Path(analysis), Path(root or ROOT)
    summary = json.loads((analysis / 'feature_collapse.json').read_text())
    for src, dst in FIGURES.items():
        (root / dst).parent.mkdir(parents=True, exist_ok=True)
        (root / dst).write_bytes((analysis / src).read_bytes())
    scales = {c['label']: layerscale(c['checkpoint']) for c in summary['checkpoints'] if c['block'] == 'v1'}
    md, headline = collapse_markdown(summary, scales)
    return write_results('feature_collapse_toy', md, command, PATHS, root=root, headline=headline, note=note)
