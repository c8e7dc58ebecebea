"""Data at cluster scale, measured on CPU (prints figures; not a test). A train2017-sized synthetic COCO json (118,287
images, 860,001 instances, small polygons) and a 1.28M-line ImageNet list file: seconds from runtime.train's start to
the first iteration, the preflight (datachecks.check; a first and a repeated run of one work dir) against mmdet's own
CocoDataset load of the same json (neither timer counts the import of mmdet.datasets, which a run does once), and the
memory of the rank and of each loader worker over two epochs whose workers restart (persistent_workers=False).
Every measurement runs in a subprocess of its own. Writes a markdown table to stdout and to --out.

  python benchmarks/scale.py --small           # 1/10 size, while iterating
  python benchmarks/scale.py                   # full size (peak memory about 3 GiB)
  python benchmarks/scale.py --code DIR        # the same measurements on another checkout (e.g. `git archive` of HEAD)
"""
import argparse
import json
import os
import os.path as osp
import shutil
import subprocess
import sys
import tempfile
import threading
import time

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CODE = os.environ.get('SCALE_CODE', ROOT)  # the checkout whose code is measured (children only)
MEASURED = ('pretrain/data.py', 'datachecks', 'benchmarks/scale.py')  # what the figures depend on
if CODE not in sys.path:
    sys.path.insert(0, CODE)

COCO_IMAGES, COCO_INSTANCES, IMAGENET = 118_287, 860_001, 1_281_167  # train2017 and ImageNet-1k train
DET_CONFIG, FCMAE_CONFIG = 'det_configs/mask_rcnn_cnx2_a.py', 'pretrain/configs/fcmae_cnx2_atto.py'
GiB, MiB = 2 ** 30, 2 ** 20


# ----------------------------------------------------------------------------------------------------------- data
def write_coco(root: str, images: int, instances: int, seed: int = 0) -> str:
    """A COCO instances json like train2017 (COCO's 80 categories and ids; 4-point polygons) and one hard link per
    image to a 64x48 JPEG, so the preflight finds every file and the first iteration reads real images."""
    import numpy as np
    from mmdet.datasets import CocoDataset
    from PIL import Image
    rng = np.random.default_rng(seed)
    os.makedirs(osp.join(root, 'annotations'), exist_ok=True)
    os.makedirs(osp.join(root, 'train2017'), exist_ok=True)
    jpeg = osp.join(root, 'pixels.jpg')
    Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(jpeg)
    cat_ids = [i for i in range(1, 91) if i not in (12, 26, 29, 30, 45, 66, 68, 69, 71, 83)]  # COCO's 80 ids
    cats = [dict(id=i, name=n, supercategory='thing') for i, n in zip(cat_ids, CocoDataset.METAINFO['classes'])]
    widths, heights = rng.integers(320, 641, images), rng.integers(240, 481, images)
    imgs = [dict(id=i + 1, file_name=f'{i + 1:012d}.jpg', width=int(w), height=int(h)) for i, (w, h) in
            enumerate(zip(widths, heights))]
    owner = np.sort(rng.integers(0, images, instances))
    x, y = rng.random(instances) * widths[owner] * .8, rng.random(instances) * heights[owner] * .8
    w, h = 1 + rng.random(instances) * (widths[owner] - x - 1), 1 + rng.random(instances) * (heights[owner] - y - 1)
    cat, crowd = rng.choice(cat_ids, instances), (rng.random(instances) < .01).astype(int)
    anns = [dict(id=j + 1, image_id=int(owner[j]) + 1, category_id=int(cat[j]), iscrowd=int(crowd[j]),
                 area=round(float(w[j] * h[j]), 2), bbox=[round(float(v), 2) for v in (x[j], y[j], w[j], h[j])],
                 segmentation=[[round(float(v), 2) for v in (x[j], y[j], x[j] + w[j], y[j], x[j] + w[j],
                                                               y[j] + h[j], x[j], y[j] + h[j])]])
            for j in range(instances)]
    path = osp.join(root, 'annotations', 'instances_train2017.json')
    with open(path, 'w') as f:
        json.dump(dict(info={}, licenses=[], images=imgs, annotations=anns, categories=cats), f)
    with open(osp.join(root, 'annotations', 'instances_val2017.json'), 'w') as f:
        json.dump(dict(images=imgs[:20], annotations=[a for a in anns if a['image_id'] <= 20], categories=cats), f)
    link_all(jpeg, [osp.join(root, 'train2017', im['file_name']) for im in imgs])
    os.makedirs(osp.join(root, 'val2017'), exist_ok=True)
    link_all(jpeg, [osp.join(root, 'val2017', im['file_name']) for im in imgs[:20]])
    return path


def link_all(source: str, targets: list, per_file: int = 60000):
    """Hard links to `source` at every target, from a fresh copy of it every `per_file` links (ext4 allows 65,000
    links to one file: train2017's 118,287 images do not fit on one)."""
    current = source
    for i, target in enumerate(targets):
        if i and i % per_file == 0:
            current = shutil.copyfile(source, f'{source}.{i // per_file}')
        os.link(current, target)


def write_imagenet_list(root: str, n: int, classes: int = 1000) -> str:
    """ImageNet's layout without its pixels: train/<wnid>/<wnid>_<k>.JPEG for `n` images in `classes` folders and a
    list file of them; the folders are links to one folder of hard links to one 64x48 JPEG (names per class differ
    only in the folder)."""
    import numpy as np
    from PIL import Image
    per = -(-n // classes)
    shared = osp.join(root, 'pixels')
    os.makedirs(shared, exist_ok=True)
    jpeg = osp.join(root, 'pixels.jpg')
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(jpeg)
    link_all(jpeg, [osp.join(shared, f'{k:08d}.JPEG') for k in range(per)])
    os.makedirs(osp.join(root, 'train'), exist_ok=True)
    wnids = [f'n{1440764 + 7919 * c:08d}' for c in range(classes)]
    for wnid in wnids:
        os.symlink(shared, osp.join(root, 'train', wnid))
    path = osp.join(root, 'train.txt')
    with open(path, 'w') as f:
        f.writelines(f'train/{wnids[i % classes]}/{i // classes:08d}.JPEG\n' for i in range(n))
    return path


# ------------------------------------------------------------------------------------------------------- children
def memory(proc) -> dict:
    """rss, uss, pss in bytes of a psutil.Process (uss, pss from /proc/PID/smaps_rollup)."""
    info = proc.memory_full_info()
    return dict(rss=info.rss, uss=info.uss, pss=getattr(info, 'pss', 0))


class Peaks(threading.Thread):
    """Samples this process and its children (loader workers) every `period` s: peak rss/uss/pss per pid."""

    def __init__(self, period: float = 0.2):
        super().__init__(daemon=True)
        import psutil
        self.me, self.period, self.peaks, self.stop = psutil.Process(), period, {}, threading.Event()

    def sample(self):
        import psutil
        for proc in [self.me] + self.me.children():
            try:
                now = memory(proc)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            peak = self.peaks.setdefault(proc.pid, now)
            for k, v in now.items():
                peak[k] = max(peak[k], v)

    def run(self):
        while not self.stop.wait(self.period):
            self.sample()

    def take(self) -> dict:
        """{pid: peaks} since the last take; the next period starts empty."""
        self.sample()
        peaks, self.peaks = self.peaks, {}
        return peaks


def import_datasets():
    """mmdet.datasets imported (it imports transformers: seconds), so that neither timer below counts it: a run
    imports it once, whether the preflight or the dataset build comes first."""
    from mmdet.registry import DATASETS
    from mmengine.registry import init_default_scope
    init_default_scope('mmdet')
    DATASETS.get('CocoDataset')
    return DATASETS


def child_load(ann_root: str) -> dict:
    """mmdet's own CocoDataset build (load_data_list, filter_data, serialise) of the config's train json."""
    import psutil
    cfg = det_cfg(ann_root)
    DATASETS = import_datasets()
    start = time.perf_counter()
    ds = DATASETS.build(cfg.train_dataloader.dataset)
    ds.full_init()
    seconds = time.perf_counter() - start
    return dict(seconds=seconds, images=len(ds), rss_peak=psutil.Process().memory_info().rss,
                maxrss=max_rss())


def child_preflight(ann_root: str, work: str) -> dict:
    """The preflight of the train json with its cache in `work`, as tools/train.py runs it: the first run of a work
    dir parses the json; a resumed or repeated one finds its verdict there, while the file is unchanged."""
    import datachecks
    cfg = det_cfg(ann_root)
    cfg.work_dir = work
    import_datasets()
    start = time.perf_counter()
    result = datachecks.check(cfg, splits=('train',))
    return dict(seconds=time.perf_counter() - start, summary=result['train'][0], maxrss=max_rss())


def max_rss() -> int:
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class FirstIteration(Exception):
    """Raised by StopAfterFirstIteration once the first training iteration has run."""


def stop_hook():
    from mmengine.hooks import Hook
    from mmengine.registry import HOOKS

    @HOOKS.register_module(force=True)
    class StopAfterFirstIteration(Hook):
        """Records when the runner starts training and when its first iteration ends, then stops the run."""
        times = {}

        def before_train(self, runner):
            self.times['before_train'] = time.time()

        def before_train_iter(self, runner, batch_idx, data_batch=None):
            self.times.setdefault('first_batch', time.time())

        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
            self.times['first_iteration'] = time.time()
            raise FirstIteration
    return StopAfterFirstIteration


def child_train(kind: str, data: str, work: str, start: float) -> dict:
    """runtime.train of the det or FCMAE config until its first iteration; seconds from `start` (the parent's clock
    when it launched this process)."""
    import runtime
    from mmengine.config import Config
    hook = stop_hook()
    config = DET_CONFIG if kind == 'det' else FCMAE_CONFIG
    hooks = Config.fromfile(osp.join(CODE, config)).get('custom_hooks', [])
    options = dict(custom_hooks=hooks + [dict(type='StopAfterFirstIteration')])
    options.update(det_options(data) if kind == 'det' else fcmae_options(data))
    imported = time.time()
    try:
        runtime.train(osp.join(CODE, config), work_dir=work, cfg_options=options)
    except FirstIteration:
        pass
    t = hook.times
    return dict(total=t['first_iteration'] - start, imports=imported - start, to_runner=t['before_train'] - imported,
                runner_to_first_batch=t['first_batch'] - t['before_train'],
                first_iteration=t['first_iteration'] - t['first_batch'], maxrss=max_rss())


def child_workers(listing: str, epochs: int, workers: int, batch: int, samples: int) -> dict:
    """The FCMAE dataset on the list file, and `epochs` epochs of a DataLoader whose workers restart each epoch
    (as the configs: persistent_workers=False), `samples` samples per epoch (0: all); peak memory of the rank and of
    each worker per epoch."""
    import psutil
    import torch
    from mmengine.dataset import DefaultSampler, default_collate
    from pretrain.data import UnlabeledImageDataset
    peaks = Peaks()
    peaks.start()
    before = memory(psutil.Process())
    start = time.perf_counter()
    ds = UnlabeledImageDataset(listing, pipeline=dict(type='fcmae', size=32))
    build = time.perf_counter() - start
    rank = dict(build_seconds=build, samples=len(ds), rss_built=memory(psutil.Process())['rss'],
                dataset_bytes=memory(psutil.Process())['uss'] - before['uss'])
    sampler = DefaultSampler(ds, shuffle=True, seed=0)
    epochs_out = []
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        loader = torch.utils.data.DataLoader(ds, batch_size=batch, sampler=sampler, num_workers=workers,
                                             persistent_workers=False, collate_fn=default_collate)
        peaks.take()
        start, seen = time.perf_counter(), 0
        for data in loader:
            seen += len(data['inputs'])
            if samples and seen >= samples:
                break
        del loader  # workers end here, as at the end of an epoch
        got = peaks.take()
        me = got.pop(os.getpid(), {})
        epochs_out.append(dict(seconds=time.perf_counter() - start, samples=seen, rank=me,
                               workers=sorted(got.values(), key=lambda p: -p['uss'])))
    peaks.stop.set()
    return dict(rank=rank, epochs=epochs_out, maxrss=max_rss())


def det_cfg(ann_root: str):
    """The det config as runtime.train loads it, on the synthetic COCO."""
    from runtime import load_cfg
    return load_cfg(osp.join(CODE, DET_CONFIG), det_options(ann_root), tempfile.mkdtemp(), 'none')


def det_cli(data_root: str) -> list:
    """--cfg-options: the toy-sized Mask R-CNN on the synthetic COCO (images of 64x48, scale 128), one loader worker."""
    from toyruns.stages import head_options
    return head_options('det') + [
        f'data_root={data_root}/', 'model.backbone.init_cfg=None', 'train_dataloader.batch_size=2',
        'train_dataloader.num_workers=1', 'train_dataloader.dataset.pipeline.2.scale=(128,128)',
        'train_dataloader.dataset.pipeline.3.crop_size=(128,128)', 'val_cfg=None', 'val_dataloader=None',
        'val_evaluator=None']


def det_options(data_root: str) -> dict:
    from tools import train
    return train.parse_args(['x', '--cfg-options', *det_cli(data_root)]).cfg_options


def fcmae_options(listing: str) -> dict:
    from tools import train
    return train.parse_args(['x', '--cfg-options', f'data_root={listing}', 'train_dataloader.dataset.pipeline.size=64',
                             'train_dataloader.batch_size=4', 'model.decoder_embed_dim=64',
                             'train_dataloader.num_workers=2', 'optim_wrapper.accumulative_counts=1']).cfg_options


CHILDREN = dict(load=child_load, preflight=child_preflight, train=child_train, workers=child_workers)


# --------------------------------------------------------------------------------------------------------- parent
def run_child(code: str, name: str, *args) -> dict:
    """One measurement in a fresh process on `code`'s checkout (one thread); its JSON result."""
    env = dict(os.environ, SCALE_CODE=code, OMP_NUM_THREADS='1', PYTHONPATH=code)
    cmd = [sys.executable, osp.abspath(__file__), '--child', name, *map(str, args)]
    start = time.time()
    proc = subprocess.run(cmd + ([str(start)] if name == 'train' else []), cwd=code, env=env, capture_output=True,
                          text=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith('SCALE ')]
    if proc.returncode or not lines:
        raise RuntimeError(f'{name} on {code} failed ({proc.returncode}):\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}')
    result = json.loads(lines[-1][6:])
    print(f'  {name}: {json.dumps(result)[:400]}', flush=True)
    return result


def worst(epochs: list, key: str) -> list:
    """Per epoch, the largest peak `key` of any worker."""
    return [max((w[key] for w in e['workers']), default=0) for e in epochs]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--small', action='store_true', help='1/10 of the sizes')
    parser.add_argument('--code', action='append', default=[], metavar='LABEL=DIR',
                        help='measure another checkout too (e.g. before=/tmp/head); default: this one as "after"')
    parser.add_argument('--epochs', type=int, default=2)
    parser.add_argument('--workers', type=int, default=2)
    parser.add_argument('--batch', type=int, default=64)
    parser.add_argument('--epoch-samples', type=int, default=0, help='samples read per epoch (default: all)')
    parser.add_argument('--parts', default='coco,imagenet')
    parser.add_argument('--repeats', type=int, default=1, help='COCO load and preflight runs per checkout, '
                        'interleaved; the fastest of each is reported (other jobs on the machine slow some runs)')
    parser.add_argument('--tmp', default=None, help='where the synthetic data goes (deleted afterwards)')
    parser.add_argument('--out', default='scale', help='name of the result page docs/results/NAME.md ("": none)')
    parser.add_argument('--child', nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        name, *rest = args.child
        fn = CHILDREN[name]
        if name == 'workers':
            rest = [rest[0]] + [int(v) for v in rest[1:]]
        elif name == 'train':
            rest = rest[:3] + [float(rest[3])]
        print('SCALE ' + json.dumps(fn(*rest)), flush=True)
        os._exit(0)  # no teardown of loader workers or process groups left by a stopped run
    codes = dict(c.split('=', 1) for c in args.code) or dict(after=ROOT)
    scale = 10 if args.small else 1
    tmp = tempfile.mkdtemp(prefix='scale_', dir=args.tmp)
    rows, parts = [], args.parts.split(',')
    try:
        if 'coco' in parts:
            images, instances = COCO_IMAGES // scale, COCO_INSTANCES // scale
            start = time.perf_counter()
            ann = write_coco(osp.join(tmp, 'coco'), images, instances)
            print(f'COCO json: {images} images, {instances} instances, {osp.getsize(ann) / MiB:.0f} MiB, written in '
                  f'{time.perf_counter() - start:.0f} s', flush=True)
            rows.append(('COCO json', f'{images} images, {instances} instances, {osp.getsize(ann) / MiB:.0f} MiB', ''))
            for label, code in codes.items():
                rounds = []
                for r in range(args.repeats):  # interleaved; each round's preflight in a new work dir
                    work = osp.join(tmp, f'work_pre_{label}_{r}')
                    rounds.append([run_child(code, 'load', osp.join(tmp, 'coco'))] + [
                        run_child(code, 'preflight', osp.join(tmp, 'coco'), work) for _ in range(2)])
                load, pre, again = (min(got, key=lambda g: g['seconds']) for got in zip(*rounds))
                train = run_child(code, 'train', 'det', osp.join(tmp, 'coco'), osp.join(tmp, f'work_det_{label}'))
                rows.append((f'{label}: mmdet CocoDataset load (full_init)' + (
                    f', fastest of {args.repeats}' if args.repeats > 1 else ''), f'{load["seconds"]:.1f} s', '1.00×'))
                for run, got in (('first run', pre), ('repeated run, same work dir', again)):
                    ratio = (got['seconds'] + load['seconds']) / load['seconds']
                    rows += [(f'{label}: preflight, {run}', f'{got["seconds"]:.2f} s',
                              f'{got["seconds"] / load["seconds"]:.2f}×'),
                             (f'{label}: preflight + dataset build, {run}',
                              f'{got["seconds"] + load["seconds"]:.1f} s', f'{ratio:.2f}× (goal ≤ 1.2×)')]
                rows += [(f'{label}: Mask R-CNN, runtime.train start → first iteration', f'{train["total"]:.1f} s',
                          f'{train["total"] / load["seconds"]:.2f}× load'),
                         (f'{label}: peak RSS, load / preflight / train', ' / '.join(
                             f'{r["maxrss"] / GiB:.2f} GiB' for r in (load, pre, train)), '')]
        if 'imagenet' in parts:
            n = IMAGENET // scale
            start = time.perf_counter()
            listing = write_imagenet_list(osp.join(tmp, 'imagenet'), n)
            print(f'ImageNet list: {n} lines, written in {time.perf_counter() - start:.0f} s', flush=True)
            rows.append(('ImageNet list file', f'{n} lines, {osp.getsize(listing) / MiB:.0f} MiB', ''))
            for label, code in codes.items():
                mem = run_child(code, 'workers', listing, args.epochs, args.workers, args.batch, args.epoch_samples)
                train = run_child(code, 'train', 'fcmae', listing, osp.join(tmp, f'work_fcmae_{label}'))
                epochs = mem['epochs']
                uss, pss, rss = worst(epochs, 'uss'), worst(epochs, 'pss'), worst(epochs, 'rss')
                seen = epochs[0]['samples']
                rows += [(f'{label}: dataset build (list file) / its private memory',
                          f'{mem["rank"]["build_seconds"]:.1f} s / {mem["rank"]["dataset_bytes"] / MiB:.0f} MiB', ''),
                         (f'{label}: FCMAE, runtime.train start → first iteration', f'{train["total"]:.1f} s', ''),
                         (f'{label}: rank peak RSS / USS over {len(epochs)} epochs',
                          f'{max(e["rank"].get("rss", 0) for e in epochs) / MiB:.0f} / '
                          f'{max(e["rank"].get("uss", 0) for e in epochs) / MiB:.0f} MiB', ''),
                         (f'{label}: worker peak USS per epoch ({args.workers} workers, {seen} samples an epoch)',
                          ' → '.join(f'{v / MiB:.0f} MiB' for v in uss), f'{uss[-1] / max(uss[0], 1):.2f}× epoch 1'),
                         (f'{label}: worker peak PSS / RSS per epoch', ' → '.join(
                             f'{p / MiB:.0f} / {r / MiB:.0f} MiB' for p, r in zip(pss, rss)), '')]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    table = ['| what | value | ratio |', '|---|---|---|'] + [f'| {w} | {v} | {r} |' for w, v, r in rows]
    text = '\n'.join(['# Data at cluster scale (benchmarks/scale.py)', ''] + table)
    print(text)
    if args.out:  # stamped with machine, date, command and commit (report.stamp)
        from report.stamp import write_results
        write_results(args.out, text, 'python benchmarks/scale.py ' + ' '.join(argv or sys.argv[1:]),
                      MEASURED, headline='; '.join(f'{w}: {r}' for w, _, r in rows if 'goal' in r and w.startswith(
                          list(codes)[-1] + ':')))

if __name__ == '__main__':
    main()
