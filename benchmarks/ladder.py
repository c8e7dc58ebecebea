"""The ladder of the ConvNeXt V2 paper's Tables 6-7 at toy scale and equal budgets: ConvNeXt V1 and V2 supervised (the
fine-tuning stage trained from random init on the labeled toy ImageNet), V1 + FCMAE, V2 + FCMAE, Swin + SimMIM (the
atto-sized Swin) and random init, each pre-trained on as many images seen (the pool for FCMAE and SimMIM), then
Mask R-CNN and UPerNet at equal downstream budgets on the small labeled sets of benchmarks/bench_transfer.py, plus
fine-tuning top-1 of the FCMAE arms, over 3 seeds.

    python benchmarks/ladder.py [--work work_dirs/toy_study] [--scale full|quick] [--seeds 0 1 2] [--workers 2]
                                [--dry-run] [--no-publish] [--republish]

Every run is a real tools/train.py + tools/test.py (seg_eval.py) run of the suite's configs (toyruns.stages); finished
runs are kept and skipped on a rerun; progress lines carry an ETA. Writes WORK/ladder[_quick].json and, at the full
scale, docs/results/ladder_toy.md (stamped) with its plot docs/figures/ladder_toy.png. --dry-run lists the runs and the
estimated time without running anything."""
import argparse
import json
import os.path as osp
import re
import shlex
import statistics
import sys
import time
from pathlib import Path

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from report.paper import FCMAE, PAPER_ADE, PAPER_COCO, SIMMIM, SUP  # noqa: E402
from toyruns.schedule import Job, run_jobs  # noqa: E402
from toyruns.stages import PRETRAIN, SWIN_CONFIGS, Toy, run_stage, swin_options  # noqa: E402

# arm: (row name, the paper's backbone prefix and init in Tables 6-7 or None, pre-training stage or None, block)
ARMS = dict(
    v1_sup=('ConvNeXt V1 supervised', ('ConvNeXt V1', SUP), 'finetune', 'v1'),
    v2_sup=('ConvNeXt V2 supervised', ('ConvNeXt V2', SUP), 'finetune', 'v2'),
    v1_fcmae=('ConvNeXt V1 + FCMAE', None, 'fcmae', 'v1'),  # the co-design ablation: not a Tables 6-7 row
    v2_fcmae=('ConvNeXt V2 + FCMAE', ('ConvNeXt V2', FCMAE), 'fcmae', 'v2'),
    swin_simmim=('Swin + SimMIM', ('Swin', SIMMIM), 'simmim', None),
    random=('random init (ConvNeXt V2)', None, None, 'v2'))
# full: the 'learn' profile's 2,048-image pool and 256-image toy ImageNet, bench_transfer's 64-image COCO / ADE20K sets
# at its downstream budgets (24 epochs, 300 iterations); 4 pool epochs at batch 64 = 8,192 images seen = 32 epochs of
# the toy ImageNet (128 optimizer steps each).
# quick: a smoke run on data of its own (1-4 iterations per run).
SCALES = dict(
    full=dict(size=128, pool=2048, imagenet=4 * 64, coco=64, ade20k=64, pre_epochs=4, pre_batch=64, ft_epochs=10,
              ft_batch=32, det_epochs=24, det_batch=4, seg_iters=300, seg_batch=4),
    quick=dict(size=64, pool=16, imagenet=4 * 4, coco=4, ade20k=4, pre_epochs=2, pre_batch=8, ft_epochs=1, ft_batch=8,
               det_epochs=1, det_batch=2, seg_iters=2, seg_batch=2))
# seconds per training image and per run (start-up and test) on one idle core of the 2-core machine at 128 px: short
# runs of each stage at load average 11 divided by 5.5 (docs/STUDIES.md "The ladder"); the dry run's estimate and
# the ETA's prior
IMAGE_S = dict(fcmae=6.6 / 64, simmim=10.9 / 64, finetune=16.6 / 64, det=2.4 / 4, seg=3.3 / 4)
RUN_S = dict(fcmae=34, simmim=47, finetune=80, det=152, seg=97)
LOAD = 5.5
METRICS = (('finetune', 'top1', 'top-1'), ('det', 'bbox_mAP', 'APbox'), ('det', 'segm_mAP', 'APmask'),
           ('seg', 'mIoU', 'mIoU'))
# the steps of the ladder the paper measures (lower arm, higher arm), and ours that it does not (random init)
STEPS = (('v1_sup', 'v2_sup'), ('v2_sup', 'v2_fcmae'), ('swin_simmim', 'v2_fcmae'), ('v1_fcmae', 'v2_fcmae'),
         ('random', 'v2_fcmae'))


def data(work: Path, scale: str) -> dict:
    """The datasets of a scale: full reuses the toy studies' data (toyruns.study.make_data, shared with
    benchmarks/learn.py and bench_transfer.py); quick writes its own small sets."""
    from toyruns.study import TRANSFER, make_data
    if scale == 'full':
        full, low = make_data(work / 'data'), make_data(work / 'data', TRANSFER['labeled'])
        return dict(unlabeled=full['unlabeled'], imagenet=full['imagenet'], coco=low['coco'], ade20k=low['ade20k'])
    from toydata import ade20k, coco_instances, imagenet_folder, unlabeled
    root, s = work / 'data_quick', SCALES['quick']
    out = dict(unlabeled=root / 'unlabeled', imagenet=root / 'imagenet', coco=root / 'coco', ade20k=root / 'ade20k')
    if not (root / 'DONE').is_file():
        unlabeled(out['unlabeled'], images=s['pool'], size=(s['size'], s['size']))
        imagenet_folder(out['imagenet'], train_per_class=s['imagenet'] // 4, val_per_class=2, size=s['size'])
        coco_instances(out['coco'], train_images=s['coco'], val_images=2, size=(s['size'], s['size']))
        ade20k(out['ade20k'], train_images=s['ade20k'], val_images=2, size=(s['size'], s['size']))
        (root / 'DONE').write_text('benchmarks/ladder.py\n')
    return out


def block_options(stage: str, block: str | None) -> list:
    """ConvNeXt V1 or V2 blocks in `stage` (FCMAE: model.block; the others: model.backbone.block); Swin: none."""
    if block is None:
        return []
    return [f'model.block={block}' if stage == 'fcmae' else f'model.backbone.block={block}']


def plan(s: dict, d: dict, seeds) -> list:
    """[(job name, Toy, name of the job whose checkpoint it starts from or None)] in a valid order; pre-training once
    per arm, fine-tuning top-1 (FCMAE arms) and Mask R-CNN / UPerNet per seed."""
    seen = s['pool'] * s['pre_epochs']
    if seen % s['imagenet']:
        raise ValueError(f'{seen} images seen in pre-training is not a whole number of epochs of the {s["imagenet"]}-'
                         'image toy ImageNet: choose pool, imagenet and pre_epochs so that it is')
    runs = []
    for arm, (_, _, stage, block) in ARMS.items():
        if stage == 'finetune':  # supervised: as many images seen, on the labeled toy ImageNet
            toy = Toy('finetune', str(d['imagenet']), seen // s['imagenet'], s['size'], s['pre_batch'],
                      images=s['imagenet'], extra=block_options(stage, block))
        elif stage:
            toy = Toy(stage, str(d['unlabeled']), s['pre_epochs'], s['size'], s['pre_batch'],
                      extra=block_options(stage, block))
        if stage:
            runs.append((f'pretrain/{arm}', toy, None))
    for seed in seeds:
        for arm, (_, _, stage, block) in ARMS.items():
            source = f'pretrain/{arm}' if stage else None
            if stage == 'fcmae':
                runs.append((f'finetune/{arm}/seed{seed}', Toy(
                    'finetune', str(d['imagenet']), s['ft_epochs'], s['size'], s['ft_batch'], seed,
                    images=s['imagenet'], extra=block_options('finetune', block)), source))
            for task in ('det', 'seg'):
                swin = dict(config=SWIN_CONFIGS[task], extra=swin_options(task)) if stage == 'simmim' else dict(
                    extra=block_options(task, block))
                data_dir = str(d['coco' if task == 'det' else 'ade20k'])
                toy = (Toy('det', data_dir, s['det_epochs'], s['size'], s['det_batch'], seed, images=s['coco'], **swin)
                       if task == 'det' else Toy('seg', data_dir, s['seg_iters'], s['size'], s['seg_batch'], seed,
                                                 **swin))
                runs.append((f'{task}/{arm}/seed{seed}', toy, source))
    return runs


def steps(toy: Toy, pool: int) -> int:
    """Optimizer steps of a run (pre-training on the pool: its epochs times pool / batch)."""
    return toy.length * max(1, pool // toy.batch) if toy.stage in PRETRAIN else toy.steps()


def seconds(toy: Toy, pool: int) -> float:
    """Seconds one run takes on one idle core of the 2-core machine at the full scale (IMAGE_S, RUN_S)."""
    return (RUN_S[toy.stage] + IMAGE_S[toy.stage] * toy.batch * steps(toy, pool)) / LOAD


def score(result: dict) -> dict:
    """The ladder's numbers of one run (percent): top-1, APbox / APmask, single-scale mIoU; pre-training: loss."""
    from toyruns.study import score as study_score
    return {k: v for k, v in study_score(result).items() if k in ('top1', 'bbox_mAP', 'segm_mAP', 'mIoU', 'loss')}


def summarise(results: dict, times: dict, s: dict, seeds, wall: float) -> dict:
    """Per arm and metric: mean, std and values over seeds (supervised top-1: the pre-training run itself)."""
    arms = {}
    for name, result in results.items():
        parts = name.split('/')
        stage, arm = parts[0], parts[1]
        got = score(result)
        if stage == 'pretrain':
            arms.setdefault(arm, {})['pretrain_loss' if 'loss' in got else 'top1'] = got.get('loss', got.get('top1'))
            continue
        for metric, value in got.items():
            arms.setdefault(arm, {}).setdefault(metric, []).append(value)
    table = {}
    for arm, metrics in arms.items():
        row = {}
        for metric, values in metrics.items():
            if isinstance(values, list):
                row[metric] = dict(mean=round(statistics.mean(values), 2), values=values,
                                   std=round(statistics.stdev(values), 2) if len(values) > 1 else 0.)
            elif metric == 'top1':
                row[metric] = dict(mean=values, std=0., values=[values])
            else:
                row[metric] = values
        table[arm] = row
    return dict(scale=s, seeds=list(seeds), images_seen=s['pool'] * s['pre_epochs'], table=table, times=times,
                wall_s=round(wall))


def paper(arm: str, size: str) -> list:
    """The paper's APbox, APmask (Table 6) and multi-scale mIoU (Table 7) of an arm at size B or L ('–': none)."""
    ref = ARMS[arm][1]
    if ref is None:
        return ['–'] * 3
    name = f'{ref[0]}-{size}'
    box = next(((b, m) for n, i, b, m in PAPER_COCO if n == name and i == ref[1]), (None, None))
    ade = next((v for n, i, v in PAPER_ADE if n == name and i == ref[1]), None)
    return ['–' if v is None else f'{v:.1f}' for v in (*box, ade)]


def cell(row: dict, metric: str) -> str:
    v = row.get(metric)
    if v is None:
        return '–'
    return f"{v['mean']:.1f}" + (f" ± {v['std']:.1f}" if len(v['values']) > 1 else '')


def ladder_table(summary: dict) -> str:
    """Tables 6-7 in one: per arm our top-1, APbox, APmask, mIoU (mean ± std over seeds), then the paper's B and L."""
    head = ['arm', 'top-1', 'APbox', 'APmask', 'mIoU (single-scale)', 'paper B APbox', 'B APmask', 'B mIoU',
            'paper L APbox', 'L APmask', 'L mIoU']
    lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    for arm, (name, *_) in ARMS.items():
        row = summary['table'].get(arm, {})
        ours = [cell(row, m) for _, m, _ in METRICS]
        lines.append('| ' + ' | '.join([name, *ours, *paper(arm, 'B'), *paper(arm, 'L')]) + ' |')
    return '\n'.join(lines)


def plot(summary: dict, path: Path) -> None:
    """Grouped bars per arm (report.plots.plot_bars): APbox, APmask, mIoU, seed means."""
    from report.plots import plot_bars
    bars = [(ARMS[arm][0], *(summary['table'].get(arm, {}).get(m, {}).get('mean') for m in
                             ('bbox_mAP', 'segm_mAP', 'mIoU'))) for arm in ARMS]
    plot_bars(bars, ('APbox', 'APmask', 'mIoU'), f"The ladder at toy scale ({len(summary['seeds'])} seeds)", path)


def findings(summary: dict) -> str:
    """Each step of the ladder per downstream metric: our difference of seed means against the resolution (twice the
    larger seed spread) and the paper's difference at B, with report.ablation's verdict."""
    from report.ablation import verdict
    head = ['step', 'metric', 'ours', 'resolution', 'paper B', 'verdict']
    lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    counts = {}
    for low, high in STEPS:
        for col, (_, metric, label) in enumerate(METRICS[1:]):
            a, b = (summary['table'].get(arm, {}).get(metric) for arm in (low, high))
            if not (a and b):
                continue
            delta, resolution = b['mean'] - a['mean'], 2 * max(a['std'], b['std'])
            ref = [paper(arm, 'B')[col] for arm in (low, high)]
            paper_delta = None if '–' in ref else float(ref[1]) - float(ref[0])
            said = verdict(delta, paper_delta, resolution)
            if paper_delta is None and said != 'within resolution':
                said = f"{'higher' if delta > 0 else 'lower'} (no paper number)"
            counts[said] = counts.get(said, 0) + 1
            lines.append(f'| {ARMS[low][0]} → {ARMS[high][0]} | {label} | {delta:+.1f} | {resolution:.1f} | '
                         f"{'–' if paper_delta is None else f'{paper_delta:+.1f}'} | {said} |")
    tally = ', '.join(f'{n} {k}' for k, n in sorted(counts.items()))
    return ('Each step of the ladder, per metric: ours is the difference of seed means (higher arm minus lower), '
            'within resolution when at most twice the larger seed spread of the two; the verdict compares its sign '
            f"with the paper's at B. Tally: {tally}.\n\n" + '\n'.join(lines))


def markdown(summary: dict, figure: str) -> str:
    s = summary['scale']
    return (f"# The Tables 6-7 ladder at toy scale\n\nEach arm pre-trained on {summary['images_seen']:,} images seen "
            f"(FCMAE and SimMIM: {s['pre_epochs']} epochs of the {s['pool']:,}-image unlabeled pool; supervised: "
            f"{summary['images_seen'] // s['imagenet']} epochs of the {s['imagenet']}-image labeled toy ImageNet; "
            f"batch {s['pre_batch']}, {s['size']} px), then Mask R-CNN ({s['det_epochs']} epochs of {s['coco']} "
            f"images) and UPerNet ({s['seg_iters']} iterations on {s['ade20k']} images) from the pre-trained weights, "
            f"and for the FCMAE arms fine-tuning ({s['ft_epochs']} epochs); {len(summary['seeds'])} seeds, "
            "mean ± std; "
            "scores on held-out images. The paper's columns: Tables 6 (Mask R-CNN, APbox / APmask) and 7 (UPerNet, "
            'multi-scale mIoU) at sizes B and L (report/paper.py).\n\n' + ladder_table(summary)
            + f'\n\n![the ladder]({figure})\n\n## The steps of the ladder\n\n{findings(summary)}\n\n'
            f'Run time: {summary["wall_s"] / 60:.0f} min wall on 2 workers.\n')


def publish(summary: dict, command: str) -> str:
    """docs/results/ladder_toy.md (stamped) and docs/figures/ladder_toy.png from a full-scale summary."""
    from report.stamp import write_results
    from report.toy_study import STUDY_PATHS
    plot(summary, Path(ROOT) / 'docs/figures/ladder_toy.png')
    best = max(ARMS, key=lambda a: summary['table'].get(a, {}).get('bbox_mAP', {}).get('mean', -1))
    return write_results('ladder_toy', markdown(summary, '../figures/ladder_toy.png'), command, STUDY_PATHS,
                         headline=f'best APbox: {ARMS[best][0]}; {summary["wall_s"] / 60:.0f} min')


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--work', default='work_dirs/toy_study', help='data (shared with the toy studies) and runs')
    p.add_argument('--scale', choices=sorted(SCALES), default='full')
    p.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    p.add_argument('--workers', type=int, default=2, help='runs at a time (one core each)')
    p.add_argument('--dry-run', action='store_true', help='list the runs and the estimated time; run nothing')
    p.add_argument('--no-publish', action='store_true', help='leave docs/results as it is')
    p.add_argument('--republish', action='store_true', help='rewrite docs/results from WORK/ladder.json; run nothing')
    args = p.parse_args(argv)
    work, s = Path(args.work), SCALES[args.scale]
    if args.republish:  # a finished run's page (its measured wall time kept), e.g. after the format changed
        summary = json.loads((work / 'ladder.json').read_text())
        print('wrote', publish(summary, 'python benchmarks/ladder.py; then --republish (this page)'))
        return summary
    d = data(work, args.scale) if not args.dry_run else {k: work / k for k in ('unlabeled', 'imagenet', 'coco',
                                                                               'ade20k')}
    runs = plan(s, d, args.seeds)
    cost = {name: seconds(toy, s['pool']) for name, toy, _ in runs}
    total = sum(cost.values())
    print(f'ladder: {len(runs)} runs, about {total / 60:.0f} min of run time, {total / 60 / args.workers:.0f} min '
          f'on {args.workers} workers (estimated for idle cores from measured full-scale '
          'per-image times)')
    if args.dry_run:
        for name, toy, source in runs:
            print(f'  {name:<28} {toy.stage:<8} {steps(toy, s["pool"]):>5} steps'
                  f'{"  from " + source if source else ""}  ~{cost[name] / 60:.1f} min')
        return dict(runs=[name for name, _, _ in runs], estimate_min=round(total / 60, 1))
    out = work / ('ladder' if args.scale == 'full' else f'ladder_{args.scale}')
    t0, left = time.time(), dict(cost)

    def log(line: str):  # run_jobs' progress line, with an ETA from the estimates scaled to the pace so far
        done = re.search(r' done +(\S+) in ', line)
        if done:
            left.pop(done[1], None)
        spent = total - sum(left.values())
        eta = (time.time() - t0) / spent * sum(left.values()) / args.workers if spent else total / args.workers
        print(f'{line}  [{len(runs) - len(left)}/{len(runs)} done, ETA {eta / 60:.0f} min]', flush=True)

    jobs = [Job(name, lambda r, toy=toy, src=source, w=out / name: run_stage(
        toy, w, r[src]['checkpoint'] if src else None), (source,) if source else (),
        describe=lambda r: str(score(r))) for name, toy, source in runs]
    results, times = run_jobs(jobs, args.workers, log)
    summary = summarise(results, times, s, args.seeds, time.time() - t0)
    (out.parent / f'{out.name}.json').write_text(json.dumps(summary, indent=1))
    plot(summary, out.parent / f'{out.name}.png')
    print(ladder_table(summary))
    if args.scale == 'full' and not args.no_publish:
        print('wrote', publish(summary, shlex.join(['python', 'benchmarks/ladder.py',
                                                    *(sys.argv[1:] if argv is None else argv)])))
    return summary


if __name__ == '__main__':
    main()
