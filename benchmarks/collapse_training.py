"""Feature collapse over a long FCMAE pre-training (ConvNeXt V2 §4, Fig. 4; issue: why the toy result went against
the paper): atto with V1 blocks and with V2 blocks, FCMAE on the ablation task's unlabeled pool for --epochs (10x the
480 iterations of benchmarks/feature_collapse.sh by default), a checkpoint every --every epochs; at each checkpoint
the mean feature cosine distance at two points of the block (after GRN, the paper's X; before GRN, after GELU) and
V1's LayerScale |γ|. Real tools/train.py runs (toyruns.stages); finished runs are kept.

    python benchmarks/collapse_training.py [--work work_dirs/collapse_training] [--epochs 38] [--every 4]
    (side by side: --blocks v2 & --blocks v1, then the plain command measures both and publishes)

Writes WORK/collapse_training.json, and (without --no-publish) docs/results/collapse_training.md with
docs/figures/collapse_training.png, stamped."""
import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.ablations import make_data  # noqa: E402
from toyruns.stages import Toy, run_stage  # noqa: E402

MEASURED = ('backbone', 'pretrain', 'toydata', 'toyruns', 'report/feature_collapse.py',
            'benchmarks/collapse_training.py')
POINTS = {'after_grn': 'after GRN (X of Fig. 4)', 'mlp_act': 'after GELU, before GRN'}


def checkpoints(work: Path, every: int, epochs: int) -> list[tuple[int, Path]]:
    """(epoch, file) of the kept checkpoints, in order."""
    return [(e, work / f'epoch_{e}.pth') for e in range(every, epochs + 1) if (work / f'epoch_{e}.pth').is_file()]


def random_init(block: str, path: Path) -> Path:
    """The encoder's random init (the FCMAE run's seed), written once: epoch 0 of the curves."""
    from backbone import ConvNeXtV2
    if not path.is_file():
        torch.manual_seed(0)
        torch.save({'model': ConvNeXtV2('atto', block=block).state_dict()}, path)
    return path


def measure(path: Path, pixels: list) -> dict:
    """Mean distance (all layers, stage 2) at each point, per-layer distances, and V1's mean LayerScale |γ|."""
    from report.feature_collapse import image_batches, layer_distances, model_from_checkpoint
    model, _ = model_from_checkpoint(str(path))
    out = {}
    for point in POINTS:
        names, dist, _ = layer_distances(model, image_batches(pixels), point)
        stage2 = [float(d) for n, d in zip(names, dist) if n.startswith('stages.2.')]
        out[point] = dict(mean=round(float(dist.mean()), 5), stage2=round(sum(stage2) / len(stage2), 5),
                          layers=[round(float(d), 5) for d in dist])
    gammas = [b.gamma.abs().mean().item() for stage in model.stages for b in stage
              if getattr(b, 'gamma', None) is not None]
    out['layerscale'] = dict(mean=sum(gammas) / len(gammas), max=max(gammas)) if gammas else None
    return out


def grn_parts(path: Path, pixels: list) -> dict:
    """Stage-2 distance after GRN of a V2 checkpoint with every GRN's β, or every γ, set to 0: how much of it comes
    from GRN's per-channel offset β, and how much from its response scaling γ·N(X)."""
    from report.feature_collapse import image_batches, layer_distances, model_from_checkpoint
    out = {}
    for zeroed in ('beta', 'gamma'):
        model, _ = model_from_checkpoint(str(path))
        for stage in model.stages:
            for block in stage:
                getattr(block.grn, zeroed).data.zero_()
        names, dist, _ = layer_distances(model, image_batches(pixels), 'after_grn')
        stage2 = [float(d) for n, d in zip(names, dist) if n.startswith('stages.2.')]
        out[f'{zeroed}_zero'] = round(sum(stage2) / len(stage2), 5)
    return out


def plot(summary: dict, path: Path) -> None:
    from matplotlib.figure import Figure
    fig = Figure(figsize=(11, 3.4))
    ax1, ax2, ax3 = fig.subplots(1, 3)
    per_epoch = summary['iterations_per_epoch']
    for block, runs in summary['blocks'].items():
        its = [r['epoch'] * per_epoch for r in runs]
        for point, style in zip(POINTS, ('-', '--')):
            ax1.plot(its, [r[point]['stage2'] for r in runs], style, marker='.', label=f'{block.upper()}, {point}')
        final = runs[-1]
        for point, style in zip(POINTS, ('-', '--')):
            ax2.plot(range(1, len(final[point]['layers']) + 1), final[point]['layers'], style, marker='.',
                     label=f'{block.upper()}, {point}')
        if final['layerscale']:
            ax3.semilogy(its, [max(r['layerscale']['mean'], 1e-7) for r in runs], marker='.', label='mean |γ|')
            ax3.semilogy(its, [max(r['layerscale']['max'], 1e-7) for r in runs], marker='.', label='largest block')
    ax1.set(xlabel='FCMAE iteration', ylabel='stage-2 mean cosine distance', ylim=(0, None),
            title='distance over training')
    ax2.set(xlabel='block', ylabel='cosine distance', ylim=(0, None), title='per layer, last checkpoint')
    ax3.set(xlabel='FCMAE iteration', ylabel='V1 LayerScale |γ|', title='V1 LayerScale growth')
    for ax in (ax1, ax2, ax3):
        ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def markdown(summary: dict) -> tuple[str, str]:
    """The results table (stage-2 distance at both points and V1's LayerScale, per checkpoint) and a headline."""
    per_epoch, blocks = summary['iterations_per_epoch'], summary['blocks']
    rows = ['| iteration | V2 after GRN | V2 before GRN | V1 (no GRN) | V1 LayerScale mean \\|γ\\| (largest block) |',
            '|---|---|---|---|---|']
    v1 = {r['epoch']: r for r in blocks['v1']}
    for r in blocks['v2']:
        o = v1.get(r['epoch'])
        ls = o and o['layerscale']
        rows.append(f"| {r['epoch'] * per_epoch} | {r['after_grn']['stage2']:.3f} | {r['mlp_act']['stage2']:.3f} | "
                    f"{'–' if o is None else format(o['after_grn']['stage2'], '.3f')} | "
                    f"{'–' if not ls else format(ls['mean'], '.2g') + ' (' + format(ls['max'], '.2g') + ')'} |")
    last2, last1 = blocks['v2'][-1], blocks['v1'][-1]
    headline = (f"after {last2['epoch'] * per_epoch} iterations, stage-2 distance V2 {last2['after_grn']['stage2']:.3f} "
                f"after GRN / {last2['mlp_act']['stage2']:.3f} before, V1 {last1['after_grn']['stage2']:.3f}")
    parts = summary.get('v2_grn_parts')
    if parts:
        rows.append(f"\nV2's last checkpoint, stage-2 distance after GRN: {last2['after_grn']['stage2']:.3f}; with "
                    f"every GRN β set to 0: {parts['beta_zero']:.3f}; with every γ set to 0 (β kept): "
                    f"{parts['gamma_zero']:.3f}; before GRN: {last2['mlp_act']['stage2']:.3f}.")
    return '\n'.join(rows), headline


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--work', default='work_dirs/collapse_training')
    p.add_argument('--epochs', type=int, default=38, help='FCMAE epochs of the pool (38 x 128 = 4,864 iterations)')
    p.add_argument('--every', type=int, default=4, help='a checkpoint every this many epochs')
    p.add_argument('--size', type=int, default=96, help='image side (96: a 3x3 FCMAE mask grid, 6x6 stage-2 maps)')
    p.add_argument('--batch', type=int, default=16)
    p.add_argument('--images', type=int, default=128, help='held-out images the distance is measured on')
    p.add_argument('--blocks', nargs='+', choices=('v2', 'v1'), default=['v2', 'v1'],
                   help='pre-train only these (one process per block runs them side by side); the table and page '
                   'need both')
    p.add_argument('--no-publish', action='store_true')
    args = p.parse_args(argv)
    if not 1 <= args.every <= args.epochs:
        p.error(f'--every {args.every} --epochs {args.epochs}: expected 1 <= every <= epochs (a checkpoint at least '
                'once)')
    t0, work = time.monotonic(), Path(args.work).resolve()
    data = make_data(work, None, None, args.size)
    from report.feature_collapse import list_images, readable_images
    pixels = readable_images(list_images(str(Path(data['imagenet']) / 'val'), args.images), args.size)
    pool = len(list(Path(data['unlabeled']).rglob('*.jpg')))
    summary = dict(size=args.size, batch=args.batch, pool=pool, images=len(pixels), epochs=args.epochs,
                   iterations_per_epoch=pool // args.batch, blocks={}, run_s={})
    for block in args.blocks:
        run = work / f'fcmae_{block}'
        toy = Toy('fcmae', str(data['unlabeled']), args.epochs, args.size, args.batch, 0, extra=[
            f'model.block={block}', f'default_hooks.checkpoint.interval={args.every}',
            'default_hooks.checkpoint.max_keep_ckpts=-1'])
        result = run_stage(toy, run)
        summary['run_s'][block] = result.get('train_s')
        print(f'collapse_training: FCMAE {block} done, loss {result["loss"]:.3f}', flush=True)
        rows = []
        for epoch, ckpt in [(0, random_init(block, work / f'random_{block}.pth'))] + checkpoints(run, args.every,
                                                                                                  args.epochs):
            rows.append(dict(epoch=epoch, **measure(ckpt, pixels)))
            print(f"  {block} epoch {epoch}: stage-2 distance {rows[-1]['after_grn']['stage2']:.3f} after GRN, "
                  f"{rows[-1]['mlp_act']['stage2']:.3f} before", flush=True)
        summary['blocks'][block] = rows
        if block == 'v2':
            summary['v2_grn_parts'] = grn_parts(checkpoints(run, args.every, args.epochs)[-1][1], pixels)
    if set(summary['blocks']) != {'v2', 'v1'}:
        return summary
    (work / 'collapse_training.json').write_text(json.dumps(summary, indent=1))
    table, headline = markdown(summary)
    print(table)
    if not args.no_publish:
        from report.stamp import ROOT as REPO, write_results
        figure = Path(REPO) / 'docs' / 'figures' / 'collapse_training.png'
        plot(summary, figure)
        md = (f"# Feature collapse over a long FCMAE pre-training (toy)\n\nAtto, V2 and V1 blocks, FCMAE on the "
              f"ablation task's {pool}-image pool at {args.size} px, batch {args.batch}, {args.epochs} epochs "
              f"({args.epochs * summary['iterations_per_epoch']} iterations); the feature cosine distance "
              f"(`report.feature_collapse`) on {len(pixels)} held-out images, averaged over stage 2's blocks.\n\n"
              f"![distance over training](../figures/collapse_training.png)\n\n{table}\n")
        command = shlex.join(['python', 'benchmarks/collapse_training.py', *(sys.argv[1:] if argv is None else argv)])
        print('collapse_training: wrote', write_results('collapse_training', md, command, MEASURED, headline=headline,
                                                        note=f'{(time.monotonic() - t0) / 60:.0f} min wall'))
    return summary


if __name__ == '__main__':
    main()
