"""The two toy studies of the suite on 128x128 toy data (toydata profile 'learn'), sharing one FCMAE pre-training:

- `learn`: each stage with its best initialisation on the full toy sets, measured on held-out images against the
  levels a working pipeline reaches (top-1, APbox / APmask, mIoU and every class's IoU, FCMAE loss vs the per-patch
  mean);
- `transfer`: random init vs FCMAE vs FCMAE -> fine-tuned on small labeled sets, 3 seeds, equal downstream budgets.

Every run is a real tools/train.py + tools/test.py (or seg_eval.py) run of the suite's configs (toyruns.stages);
finished runs are kept and skipped on a rerun."""
import json
import statistics
from pathlib import Path

from mmengine.config import Config

from toydata import PROFILES, ade20k, coco_instances, imagenet_folder, unlabeled

from .schedule import Job, run_jobs
from .stages import CONFIGS, ROOT, Toy, run_stage

SIZE = 128
LEVELS = dict(top1=95., bbox_mAP=50., segm_mAP=45., mIoU=85., class_IoU=70.)  # held-out, reached when each stage learns
# lengths: FCMAE epochs over the pool; finetune / det epochs; seg iterations (batch sizes below)
LEARN = dict(fcmae=16, finetune=30, det=24, seg=800)
TRANSFER = dict(finetune=40, det=24, seg=300, labeled=dict(imagenet=16, coco=64, ade20k=64),  # 4x16 / 64 / 64
                batch=dict(finetune=16))
BATCH = dict(fcmae=64, finetune=32, det=4, seg=4)
INITS = ('random', 'fcmae', 'fcmae_ft')


def make_data(root: Path, labeled: dict | None = None) -> dict:
    """The 'learn' profile under root/ (skipped when written before); `labeled` gives smaller training sets
    (ImageNet per class, COCO / ADE20K images) with the same held-out sets (written under root/low_label/)."""
    prof = PROFILES['learn']
    out = root / ('low_label' if labeled else 'full')
    if not (out / 'DONE').is_file():
        im, co, ad = dict(prof['imagenet']), dict(prof['coco']), dict(prof['ade20k'])
        if labeled:
            im['train_per_class'], co['train_images'], ad['train_images'] = (
                labeled['imagenet'], labeled['coco'], labeled['ade20k'])
        imagenet_folder(out / 'imagenet', **im)
        coco_instances(out / 'coco', **co)
        ade20k(out / 'ade20k', **ad)
        (out / 'DONE').write_text('toyruns.study\n')
    pool = root / 'unlabeled'
    if not (pool / 'DONE').is_file():
        unlabeled(pool, **prof['unlabeled'])
        (pool / 'DONE').write_text('toyruns.study\n')
    return dict(imagenet=out / 'imagenet', coco=out / 'coco', ade20k=out / 'ade20k', unlabeled=pool)


def toys(data: dict, lengths: dict, seed: int = 0, images: dict | None = None) -> dict:
    """Toy specs of the four stages on `data` (make_data) with `lengths` and the training-set sizes `images`."""
    images = images or dict(imagenet=4 * PROFILES['learn']['imagenet']['train_per_class'],
                            coco=PROFILES['learn']['coco']['train_images'])
    batch = dict(BATCH, **lengths.get('batch', {}))
    return dict(
        fcmae=Toy('fcmae', str(data['unlabeled']), lengths.get('fcmae', LEARN['fcmae']), SIZE, batch['fcmae']),
        finetune=Toy('finetune', str(data['imagenet']), lengths['finetune'], SIZE, batch['finetune'], seed,
                     images=images['imagenet']),
        det=Toy('det', str(data['coco']), lengths['det'], SIZE, batch['det'], seed, images=images['coco']),
        seg=Toy('seg', str(data['ade20k']), lengths['seg'], SIZE, batch['seg'], seed))


def score(result: dict) -> dict:
    """The headline numbers of a run's result.json (percent)."""
    stage = result['stage']
    if stage == 'finetune':
        return dict(top1=round(result['metrics']['accuracy/top1'], 2))
    if stage == 'det':
        m = result['metrics']
        return dict(bbox_mAP=round(100 * m['coco/bbox_mAP'], 1), segm_mAP=round(100 * m['coco/segm_mAP'], 1))
    if stage == 'seg':
        single = result['single_scale']
        present = {k: v for k, v in single['per_class_IoU'].items() if v is not None}
        out = dict(mIoU=single['mIoU'], class_IoU=min(present.values()), classes=present)
        if 'multi_scale' in result:
            out['mIoU_ms'] = result['multi_scale']['mIoU']
        return out
    return dict(loss=result['loss'])


def fcmae_heldout(result: dict, data: dict) -> dict:
    """The FCMAE checkpoint's masked-patch loss on the held-out toy ImageNet images vs the per-patch mean."""
    from pretrain.evaluate import reconstruction_losses
    images = sorted(str(p) for p in Path(data['imagenet'], 'val').rglob('*.JPEG'))
    return reconstruction_losses(Config.fromfile(ROOT / CONFIGS['fcmae']), result['checkpoint'], images, SIZE)


def learn(work: Path, workers: int = 2, lengths: dict | None = None, log=print) -> dict:
    """Study 1: FCMAE on the pool -> fine-tuning -> Mask R-CNN and UPerNet from the fine-tuned weights."""
    lengths = dict(LEARN, **(lengths or {}))
    data = make_data(work / 'data')
    t = toys(data, lengths)
    runs = work / 'learn'
    jobs = [
        Job('fcmae', lambda r: run_stage(t['fcmae'], work / 'fcmae'), describe=lambda r: f"loss {r['loss']:.3f}"),
        Job('finetune', lambda r: run_stage(t['finetune'], runs / 'finetune', r['fcmae']['checkpoint']), ('fcmae',),
            describe=lambda r: str(score(r))),
        Job('det', lambda r: run_stage(t['det'], runs / 'det', r['finetune']['checkpoint']), ('finetune',),
            describe=lambda r: str(score(r))),
        Job('seg', lambda r: run_stage(t['seg'], runs / 'seg', r['finetune']['checkpoint'], single_scale=False),
            ('finetune',), describe=lambda r: str({k: v for k, v in score(r).items() if k != 'classes'}))]
    results, times = run_jobs(jobs, workers, log)
    summary = dict(lengths=lengths, levels=LEVELS, times=times, fcmae=fcmae_heldout(results['fcmae'], data),
                   **{k: score(results[k]) for k in ('finetune', 'det', 'seg')})
    summary['passed'] = passed(summary)
    (work / 'learn.json').write_text(json.dumps(summary, indent=1))
    return summary


def passed(summary: dict) -> dict:
    """Each level of LEVELS met or not; FCMAE: held-out loss below half the per-patch-mean baseline."""
    got = dict(top1=summary['finetune']['top1'], bbox_mAP=summary['det']['bbox_mAP'],
               segm_mAP=summary['det']['segm_mAP'], mIoU=summary['seg']['mIoU'],
               class_IoU=summary['seg']['class_IoU'])
    out = {k: got[k] >= LEVELS[k] for k in LEVELS}
    out['fcmae'] = summary['fcmae']['ratio'] < 0.5
    return out


def transfer(work: Path, seeds=(0, 1, 2), workers: int = 2, lengths: dict | None = None, log=print) -> dict:
    """Study 2: per seed, fine-tuning from random / FCMAE, Mask R-CNN and UPerNet from random / FCMAE / FCMAE ->
    fine-tuned (that seed's fine-tuning run), on the small labeled sets; mean and std over seeds per init."""
    lengths = dict(TRANSFER, **(lengths or {}))
    labeled = lengths['labeled']
    data = make_data(work / 'data', labeled)
    runs, jobs = work / 'transfer', []
    jobs.append(Job('fcmae', lambda r: run_stage(toys(data, lengths)['fcmae'], work / 'fcmae'),
                    describe=lambda r: f"loss {r['loss']:.3f}"))
    for seed in seeds:
        t = toys(data, lengths, seed, dict(imagenet=4 * labeled['imagenet'], coco=labeled['coco']))
        for stage in ('finetune', 'det', 'seg'):
            for init in INITS[:2] if stage == 'finetune' else INITS:
                name = f'{stage}/{init}/seed{seed}'
                source = dict(random=None, fcmae='fcmae', fcmae_ft=f'finetune/fcmae/seed{seed}')[init]
                jobs.append(Job(name, lambda r, toy=t[stage], w=runs / name, s=source: run_stage(
                    toy, w, r[s]['checkpoint'] if s else None), (source,) if source else (),
                    describe=lambda r: str({k: v for k, v in score(r).items() if k != 'classes'})))
    jobs.sort(key=lambda j: (bool(j.after) and j.name != 'fcmae', 'fcmae_ft' in j.name))  # random runs beside FCMAE
    jobs.insert(0, jobs.pop(next(i for i, j in enumerate(jobs) if j.name == 'fcmae')))
    results, times = run_jobs(jobs, workers, log)
    rows = {}
    for name, result in results.items():
        if name == 'fcmae':
            continue
        stage, init, _ = name.split('/')
        for metric, value in score(result).items():
            if metric != 'classes':
                rows.setdefault((stage, metric), {}).setdefault(init, []).append(value)
    table = [dict(stage=s, metric=m, **{init: dict(mean=round(statistics.mean(v), 2),
                                                    std=round(statistics.stdev(v), 2) if len(v) > 1 else 0.,
                                                    values=v) for init, v in by_init.items()})
             for (s, m), by_init in rows.items()]
    summary = dict(lengths=lengths, seeds=list(seeds), times=times, table=table,
                   fcmae=fcmae_heldout(results['fcmae'], data))
    (work / 'transfer.json').write_text(json.dumps(summary, indent=1))
    return summary


def main(study: str, doc: str, argv=None) -> dict:
    """The command line of benchmarks/learn.py ('learn') and benchmarks/bench_transfer.py ('transfer'): runs the
    study, prints its table and writes it, stamped, into docs/results (report.toy_study.publish)."""
    import argparse
    import shlex
    import sys
    import time
    from report.toy_study import learn_table, publish, transfer_table
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument('--work', default='work_dirs/toy_study', help=f'data, runs and {study}.json go here')
    p.add_argument('--workers', type=int, default=2, help='runs at a time (one core each)')
    p.add_argument('--no-publish', action='store_true', help='leave docs/results as it is (trial runs)')
    if study == 'transfer':
        p.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    args = p.parse_args(argv)
    t0 = time.monotonic()
    if study == 'learn':
        summary = learn(Path(args.work), args.workers)
        print(learn_table(summary))
    else:
        summary = transfer(Path(args.work), tuple(args.seeds), args.workers)
        print(transfer_table(summary))
    if not args.no_publish:
        script = Path(sys.argv[0]).resolve()
        script = script.relative_to(ROOT) if script.is_relative_to(ROOT) else script
        command = shlex.join(['python', str(script), *(sys.argv[1:] if argv is None else argv)])
        wall = f'{(time.monotonic() - t0) / 60:.0f} min wall for what this invocation ran (finished runs are kept)'
        print(f'{study}: wrote {publish(study, summary, command, note=wall)}')
    return summary
