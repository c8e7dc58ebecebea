"""What each GRN of a trained FCMAE encoder computes on held-out images (why an ablated GRN trains or not): per GRN
layer, the divisive normalization's denominator mean_j G(X)_j (its lowest value over the images, and the lowest in
magnitude), the largest |N(G(X))| it scales x by, and the layer's largest |γ|. Each run is a tools/train.py FCMAE work
dir (its dumped config and last checkpoint, e.g. a run of benchmarks/ablations.py); the encoder sees the images
masked as in pre-training (seeded), since that is where the run's loss came from. mean_j G_j is the denominator of
the 'divisive' and 'inverse_sum' normalizations; |N| is the run's own normalization whichever it is.

    python benchmarks/grn_statistics.py RUN_DIR [RUN_DIR ...] --images DIR [--labels ...] [--size 128] [--publish]

Prints a table per run; --publish writes it as docs/results/grn_statistics.md, stamped."""
import argparse
import shlex
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

MEASURED = ('backbone', 'pretrain', 'benchmarks/grn_statistics.py')


def load_run(run: Path):
    """The FCMAE model of a work dir, built from its dumped config and strictly loaded from its last checkpoint."""
    from mmengine.config import Config
    from mmengine.registry import MODELS

    from backbone.checkpoint import load_state_dict_strictly, pick_state_dict, safe_load
    configs, last = sorted(run.glob('*.py')), run / 'last_checkpoint'
    if len(configs) != 1 or not last.is_file():
        raise FileNotFoundError(f'{run}: expected a tools/train.py work dir (one dumped config .py and '
                                f'last_checkpoint); found configs {[c.name for c in configs]}, '
                                f'last_checkpoint {"present" if last.is_file() else "absent"}')
    ckpt = Path(last.read_text().strip())
    ckpt = ckpt if ckpt.is_absolute() else run / ckpt.name
    model = MODELS.build(Config.fromfile(str(configs[0])).model).eval()
    sd, _ = pick_state_dict(safe_load(ckpt), 'state_dict')
    load_state_dict_strictly(model, sd, str(ckpt))
    return model


@torch.no_grad()
def grn_statistics(model, images: torch.Tensor, seed: int = 0) -> list[dict]:
    """Per GRN layer of model.encoder (in order): denominator min, min |.| and share < 0, max |N|, max |γ| over
    `images`."""
    from backbone.grn import GRN
    rows, hooks = [], []

    def record(module, args, kwargs, _):
        names = dict(zip(('x', 'keep', 'dims'), args), **kwargs)
        g = module.aggregate(names['x'], names.get('keep'), names.get('dims', (1, 2)))
        den = g.mean(dim=-1)
        rows.append(dict(den_min=den.min().item(), den_absmin=den.abs().min().item(),
                         den_negative=(den < 0).float().mean().item(),
                         n_absmax=module.response(g).abs().max().item(), gamma_absmax=module.gamma.abs().max().item()))

    for m in model.encoder.modules():
        if isinstance(m, GRN):
            hooks.append(m.register_forward_hook(record, with_kwargs=True))
    try:
        torch.manual_seed(seed)
        model.forward_encoder(images, model.random_masking(len(images), *images.shape[-2:]))
    finally:
        for h in hooks:
            h.remove()
    return rows


def markdown(results: dict) -> str:
    out = []
    for label, rows in results.items():
        out += [f'**{label}**\n', '| GRN layer | lowest mean_j G_j | lowest \\|mean_j G_j\\| | '
                'images with mean_j G_j < 0 | largest \\|N\\| | largest \\|γ\\| |', '|---|---|---|---|---|---|']
        out += [f"| {i} | {r['den_min']:+.3g} | {r['den_absmin']:.3g} | "
                f"{100 * r['den_negative']:.0f} % | {r['n_absmax']:.3g} | {r['gamma_absmax']:.3g} |"
                for i, r in enumerate(rows)]
        out.append('')
    return '\n'.join(out)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('runs', nargs='+', type=Path, help='tools/train.py FCMAE work dirs')
    p.add_argument('--images', required=True, help='folder of held-out images (read at any depth)')
    p.add_argument('--labels', nargs='+', help='one label per run (default: the folder names)')
    p.add_argument('--size', type=int, default=128, help='center-crop size')
    p.add_argument('--max-images', type=int, default=64)
    p.add_argument('--publish', action='store_true', help='write docs/results/grn_statistics.md')
    args = p.parse_args(argv)
    if args.labels and len(args.labels) != len(args.runs):
        p.error(f'--labels: {len(args.labels)} labels for {len(args.runs)} runs')
    import backbone, pretrain  # noqa: F401  (registers the models)
    from report.feature_collapse import list_images, readable_images
    images = torch.stack(readable_images(list_images(args.images, args.max_images), args.size))
    results = {}
    for label, run in zip(args.labels or [r.name for r in args.runs], args.runs):
        results[label] = grn_statistics(load_run(run), images)
        if not results[label]:
            p.error(f'{run}: its encoder has no GRN layer (an ablation without GRN?); nothing to measure')
    table = markdown(results)
    print(table)
    if args.publish:
        from report.stamp import write_results
        first = {k: v[0] for k, v in results.items()}
        headline = 'first GRN: ' + ', '.join(f"{k} max |N| {v['n_absmax']:.3g}" for k, v in first.items())
        md = (f'# GRN statistics of trained FCMAE encoders\n\nOn {len(images)} held-out images at {args.size} px, '
              f'masked as in pre-training (seed 0). G(X): the run\'s aggregation per channel; N: its normalization; '
              f'mean_j G_j is the divisive denominator (near 0 or negative: N blows up or flips sign).\n\n{table}')
        command = shlex.join(['python', 'benchmarks/grn_statistics.py', *(sys.argv[1:] if argv is None else argv)])
        print('grn_statistics: wrote', write_results('grn_statistics', md, command, MEASURED, headline=headline))
    return results


if __name__ == '__main__':
    main()
