"""The end-to-end demo on generated toy data: FCMAE pre-training of atto -> ImageNet fine-tuning -> Mask R-CNN (COCO
layout) and UPerNet (ADE20K layout, single + multi-scale test), each beside its Swin baseline, SimMIM-pre-trained on
the same pool for as many iterations as FCMAE (same images, batch and epochs) -> tools/compare.py report. The runs are
the toy studies' stage definitions (toyruns.stages), scheduled on DEMO_WORKERS cores.

    bash tools/demo.sh [WORK=work_dirs/demo]     (python -m toyruns.demo WORK)   DEMO_SCALE=default|tiny, knobs DEMO_*

Re-runnable: a step whose final checkpoint / JSON exists is skipped, an interrupted run resumes (--resume)."""
import json
import os
import re
import shlex
import sys
import threading
import time
from pathlib import Path

from .schedule import Job, run_jobs
from .stages import CONFIGS, ROOT, SWIN_CONFIGS, Toy, call, run_stage, swin_options

SCALES = dict(  # tiny: the test suite's run (1-2 iterations per stage, 64-px images); default: toydata's 'learn' scenes
    tiny=dict(images=2, cls_size=64, size=64, fcmae_epochs=2, ft_epochs=1, cls_batch=8, det_epochs=1, det_batch=2,
              seg_iters=2, seg_batch=4, flops=0, pool=8, workers=2, profile='small', det_init='fcmae'),
    default=dict(images=48, cls_size=128, size=128, fcmae_epochs=10, ft_epochs=20, cls_batch=32, det_epochs=16,
                 det_batch=4, seg_iters=150, seg_batch=4, flops=1, pool=512, workers=2, profile='learn',
                 det_init='fcmae'))
KNOBS = dict(  # DEMO_<NAME> environment variables; sizes are square image sides (multiples of 32)
    images='train images per split (ImageNet: per class, 4 classes); val gets half', cls_size='ImageNet crop',
    size='COCO / ADE20K image side', fcmae_epochs='FCMAE and SimMIM epochs over the pool', ft_epochs='',
    cls_batch='FCMAE, SimMIM and fine-tuning batch', det_epochs='', det_batch='',
    seg_iters='', seg_batch='', flops='1: FLOPs in the report (a CPU forward at 1280x800 / 2048x512 each)',
    pool='unlabeled images for FCMAE and SimMIM', workers='runs at a time (one core each)',
    det_init='fcmae | finetune: the Mask R-CNN backbone init')
LOG_EVERY_ITER = ['default_hooks.logger.interval=1']  # live progress: every iteration logged
SHOW = re.compile(r'Epoch\(|Iter\(|mAP_copypaste|seg_eval:|visualize_fcmae:|compare:|Error|error:')
RUNS = {  # run folder: (step names of its train and test steps) -- the folder names appear in the report
    'fcmae_cnx2_atto': ('fcmae', None), 'simmim_swin_atto_size': ('simmim', None),
    'finetune_cnx2_atto': ('finetune', 'finetune_test'),
    'mask_rcnn_cnx2_a': ('mask_rcnn_cnx2_a', 'mask_rcnn_cnx2_a_test'),
    'mask_rcnn_swin_atto_size': ('mask_rcnn_swin_atto_size', 'mask_rcnn_swin_atto_size_test'),
    'upernet_cnx2_a': ('upernet_cnx2_a', 'upernet_cnx2_a_eval'),
    'upernet_swin_atto_size': ('upernet_swin_atto_size', 'upernet_swin_atto_size_eval')}
# the code the demo's figures depend on (report.stamp marks docs/results/demo.md stale when it changes)
MEASURED = ('backbone', 'pretrain', 'runtime', 'toydata', 'toyruns', 'det_configs', 'seg_configs', 'report',
            'tools/train.py', 'tools/test.py', 'tools/seg_eval.py', 'tools/compare.py', 'tools/demo.sh')
FOLDERS = {steps[0]: folder for folder, steps in RUNS.items()}  # job (its train step's name) -> run folder


def settings(env=os.environ) -> dict:
    """The scale's values with DEMO_* overrides; 'overridden' lists the knobs set."""
    scale = env.get('DEMO_SCALE', 'default')
    if scale not in SCALES:
        raise ValueError(f'DEMO_SCALE={scale}: expected one of {", ".join(sorted(SCALES))}')
    out, set_ = dict(SCALES[scale], scale=scale), []
    for key in KNOBS:
        text = env.get(f'DEMO_{key.upper()}')
        if text is None:
            continue
        set_.append(key)
        if key == 'det_init':
            if text not in ('fcmae', 'finetune'):
                raise ValueError(f'DEMO_DET_INIT={text}: expected fcmae or finetune')
            out[key] = text
        elif not text.isdigit() or (int(text) == 0 and key != 'flops'):
            raise ValueError(f'DEMO_{key.upper()}={text}: expected a positive integer')
        else:
            out[key] = int(text)
    out['overridden'] = set_
    return out


def toys(s: dict, data: Path) -> dict:
    """The demo's runs (RUNS folder -> Toy), from the toy stage definitions with the demo's sizes and lengths; SimMIM
    pre-trains the Swin baseline on FCMAE's pool with FCMAE's image size, batch and epochs (the same images seen)."""
    common = dict(extra=LOG_EVERY_ITER)
    pool = (str(data / 'unlabeled'), s['fcmae_epochs'], s['cls_size'], s['cls_batch'])
    det = dict(size=s['size'], batch=s['det_batch'], images=s['images'])
    seg = dict(size=s['size'], batch=s['seg_batch'])
    return {
        'fcmae_cnx2_atto': Toy('fcmae', *pool, **common),
        'simmim_swin_atto_size': Toy('simmim', *pool, **common),
        'finetune_cnx2_atto': Toy('finetune', str(data / 'imagenet'), s['ft_epochs'], s['cls_size'], s['cls_batch'],
                                  images=4 * s['images'], **common),
        'mask_rcnn_cnx2_a': Toy('det', str(data / 'coco'), s['det_epochs'], **det, **common),
        'mask_rcnn_swin_atto_size': Toy('det', str(data / 'coco'), s['det_epochs'], **det, config=SWIN_CONFIGS['det'],
                                        extra=LOG_EVERY_ITER + swin_options('det')),
        'upernet_cnx2_a': Toy('seg', str(data / 'ade20k'), s['seg_iters'], **seg, **common),
        'upernet_swin_atto_size': Toy('seg', str(data / 'ade20k'), s['seg_iters'], **seg, config=SWIN_CONFIGS['seg'],
                                      extra=LOG_EVERY_ITER + swin_options('seg'))}


class Progress:
    """Banners (`== [  12s] name  started / finished in Ns / done before, skipped`), the progress lines of the runs'
    logs, and per-step times kept in WORK/times.json (so a resumed demo still reports the earlier ones)."""

    def __init__(self, work: Path):
        self.t0, self.lock, self.file = time.time(), threading.Lock(), work / 'times.json'
        self.times = json.loads(self.file.read_text()) if self.file.is_file() else {}

    def say(self, text: str):
        with self.lock:
            print(f'== [{time.time() - self.t0:4.0f}s] {text}', flush=True)

    def show(self, line: str):
        if SHOW.search(line):
            line = re.sub(r'^.* - mmengine - INFO - ', '', line)
            with self.lock:
                print(line if len(line) <= 140 else line[:140] + ' ...', flush=True)

    def step(self, name: str, done: Path | None, fn, log: Path | None = None):
        """Run fn unless `done` exists (None: always); fn must write `done`."""
        if done is not None and done.exists():
            self.say(f'{name:<22} done before ({done}), skipped')
            return
        self.say(f'{name:<22} started' + (f' (log: {log})' if log else ''))
        start = time.time()
        fn()
        if done is not None and not done.exists():
            raise RuntimeError(f'stage {name} did not write {done}')
        seconds = round(time.time() - start)
        self.say(f'{name:<22} finished in {seconds}s')
        with self.lock:
            self.times[name] = seconds
            self.file.write_text(json.dumps(self.times, indent=1))

    def stage_steps(self, folder: str, work: Path):
        """run_stage's `step` for one run: the demo's banner names for its train and test steps."""
        names = dict(zip(('train', 'test'), RUNS[folder]))
        return lambda kind, done, fn: self.step(names[kind], done, fn, work / 'run.log')


def jobs(s: dict, work: Path, progress: Progress) -> list:
    """data -> FCMAE -> (reconstruction grid, fine-tuning) -> Mask R-CNN / UPerNet; data -> SimMIM -> the Swin runs."""
    data, runs, logs = work / 'data', work / 'runs', work / 'logs'
    t = toys(s, data)

    def make_data(results):
        def write():
            call([ROOT / 'tools/make_toy_data.py', data, '--profile', s['profile'], '--imagenet', '--coco', '--ade20k',
                  '--unlabeled', '--images', s['images'], '--size', f'{s["size"]}x{s["size"]}', '--pool', s['pool']],
                 logs / 'data.log', progress.show)
            (data / 'DONE').write_text(time.ctime() + '\n')
        progress.step('data', data / 'DONE', write, logs / 'data.log')

    def run(folder, init=None, single_scale=True):
        return lambda results: run_stage(t[folder], runs / folder, init and results[init]['checkpoint'],
                                         single_scale, progress.show, progress.stage_steps(folder, runs / folder))

    def fcmae_vis(results):
        out = runs / 'fcmae_cnx2_atto' / 'vis'
        images = sorted(str(p) for p in (data / 'imagenet' / 'val').rglob('*.JPEG'))[:2]

        def draw():
            call([ROOT / 'tools/visualize_fcmae.py', ROOT / CONFIGS['fcmae'], results['fcmae']['checkpoint'], *images,
                  '--out-dir', out, '--size', s['cls_size']], logs / 'fcmae_vis.log', progress.show)
            (out / 'DONE').write_text(time.ctime() + '\n')
        progress.step('fcmae_vis', out / 'DONE', draw, logs / 'fcmae_vis.log')

    det_init = s['det_init']  # the job whose checkpoint Mask R-CNN starts from
    return [Job('data', make_data), Job('fcmae', run('fcmae_cnx2_atto'), ('data',)),
            Job('simmim', run('simmim_swin_atto_size'), ('data',)),
            Job('finetune', run('finetune_cnx2_atto', 'fcmae'), ('fcmae',)),
            Job('fcmae_vis', fcmae_vis, ('fcmae',)),
            Job('mask_rcnn_cnx2_a', run('mask_rcnn_cnx2_a', det_init), (det_init,)),
            Job('mask_rcnn_swin_atto_size', run('mask_rcnn_swin_atto_size', 'simmim'), ('simmim',)),
            Job('upernet_cnx2_a', run('upernet_cnx2_a', 'finetune', single_scale=False), ('finetune',)),
            Job('upernet_swin_atto_size', run('upernet_swin_atto_size', 'simmim', single_scale=False), ('simmim',))]


def results_table(results: dict, times: dict) -> str:
    """The scores each stage reached on held-out toy images and the per-step times, as markdown."""
    def fmt(v):
        return '–' if v is None or v < 0 else f'{100 * v:.1f}'
    rows = []
    for job in FOLDERS:
        result = results[job]
        stage = result['stage']
        if stage in ('fcmae', 'simmim'):
            score = f"loss {result['loss']:.4f} (last logged iteration)"
        elif stage == 'finetune':
            score = f"top-1 {result['metrics']['accuracy/top1']:.1f}"
        elif stage == 'det':
            m = result['metrics']
            score = f"APbox {fmt(m['coco/bbox_mAP'])}, APmask {fmt(m['coco/segm_mAP'])}"
        else:
            score = f"mIoU {result['single_scale']['mIoU']:.1f}, multi-scale {result['multi_scale']['mIoU']:.1f}"
        train, test = RUNS[FOLDERS[job]]
        rows.append(f'| {job} | {score} | {times.get(train, "–")} | {times.get(test, "–") if test else "–"} |')
    other = ', '.join(f'{k} {times[k]} s' for k in ('data', 'fcmae_vis', 'report') if k in times)
    return '\n'.join(['| run | score on held-out toy images | train (s) | test (s) |', '|---|---|---|---|', *rows,
                      '', f'Other steps: {other}.'])


def headline(results: dict, wall: float) -> str:
    """One line for the results index: the ConvNeXt V2 scores and the wall time."""
    ft, det, seg = (results.get(k, {}) for k in ('finetune', 'mask_rcnn_cnx2_a', 'upernet_cnx2_a'))
    return (f"top-1 {ft['metrics']['accuracy/top1']:.1f}, APbox {100 * det['metrics']['coco/bbox_mAP']:.1f}, "
            f"mIoU {seg['single_scale']['mIoU']:.1f} on held-out toy images; {wall / 60:.0f} min")


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) > 1 or argv and argv[0].startswith('-'):
        print(f'usage: bash tools/demo.sh [WORK=work_dirs/demo]\n{__doc__}', file=sys.stderr)
        return 2
    work = Path(argv[0] if argv else 'work_dirs/demo').resolve()
    try:
        s = settings()
    except ValueError as e:
        print(f'tools/demo.sh: {e}', file=sys.stderr)
        return 2
    for sub in ('runs', 'logs'):
        (work / sub).mkdir(parents=True, exist_ok=True)
    progress = Progress(work)
    print(f'== tools/demo.sh: scale {s["scale"]}, work dir {work}, {s["workers"]} runs at a time, one thread each'
          + (f'; set: {", ".join(s["overridden"])}' if s['overridden'] else ''), flush=True)
    try:
        results, _ = run_jobs(jobs(s, work, progress), s['workers'], log=lambda line: None)
        progress.step('report', None, lambda: call(  # always rebuilt (seconds; FLOPs cached in the plots folder)
            [ROOT / 'tools/compare.py', work / 'runs', '--out', work / 'report.md', '--plots', work / 'plots',
             *([] if s['flops'] else ['--no-flops'])], work / 'logs' / 'report.log', progress.show),
            work / 'logs' / 'report.log')
    except Exception as e:  # a stage's failure: its log's last lines are in the message
        print(f'== tools/demo.sh: {e}', file=sys.stderr)
        return 1
    wall = time.time() - progress.t0
    table = results_table(results, progress.times)
    (work / 'results.md').write_text(table + '\n')
    print(f'== [{wall:4.0f}s] tools/demo.sh finished: {work / "report.md"}\n{table}')
    published = [p for p in (r.get('published') for r in results.values() if isinstance(r, dict)) if p]
    print('published weights-only checkpoints:\n  ' + '\n  '.join(published))
    if s['scale'] == 'default' and not s['overridden']:  # the measured figures docs/results/demo.md holds
        from report.stamp import write_results
        note = (f'{wall / 60:.1f} min wall for what this invocation ran ({s["workers"]} runs at a time); '
                'steps finished by an earlier invocation keep their times')
        md = (f'# The end-to-end demo on toy data\n\n{table}\n\nEvery stage learns end to end; the scores do not rank '
              'backbones or initialisations: [What the demo\'s lengths can and cannot show]'
              '(../DEMO.md#what-the-demo-can-show).\n')
        print('wrote', write_results('demo', md, shlex.join(['bash', 'tools/demo.sh', *argv]), MEASURED, note=note,
                                     headline=headline(results, wall)))
    return 0


if __name__ == '__main__':
    sys.exit(main())
