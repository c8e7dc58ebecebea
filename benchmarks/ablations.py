"""The ConvNeXt V2 paper's ablations (Tables 1-3, appendix) rerun on a toy task: per row of a table, FCMAE
pre-training on an unlabeled pool with the row's options, then fine-tuning on few labels, `--seeds` seeds, each a real
tools/train.py + tools/test.py run of the suite's atto configs at the protocol's smaller size (PROTOCOL, toyruns.stages);
the measured top-1 beside the paper's.

    python benchmarks/ablations.py TABLE... [--seeds 0 1 2] [--jobs 2] [--work work_dirs/ablations] [--no-publish]

The toy task is toydata's 'ablation' profile: 24 classes (shape x texture x layout) at 128 px (--size: written at
that size), 32 labels a class, 128 a class held out, a 2,048-image pool. Runs go under WORK/runs/<protocol>/.
Finished runs are kept and skipped on a rerun (rows that share options share runs, across tables too; a kept run is
only tested again when the held-out set changed); prints progress and an ETA; writes WORK/<table>.json and,
stamped, docs/results/ablation_<table>.md with a plot in docs/figures (report.ablation). Tables (paper: ConvNeXt
V2-B, IN-1K top-1):
"""
import argparse
import hashlib
import json
import os.path as osp
import re
import shlex
import statistics
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from toydata import PROFILES, imagenet_folder, unlabeled  # noqa: E402
from toyruns.schedule import Job, run_jobs  # noqa: E402
from toyruns.stages import Toy, load_json, retest, run_stage, save_json  # noqa: E402

# the study's protocol (docs/ABLATIONS.md, "The studies"): a ConvNeXt V2 smaller than atto (1.2M parameters; atto:
# depths 2/2/6/2, widths 40-320) at 128 px, where the 32-px FCMAE mask is a 4x4 grid (at 64 px its 2x2 grid left
# FCMAE 9 points below random init); FCMAE 20 epochs of the 2,048-image pool (640 steps), fine-tuning 25 epochs of the
# 768 labels (600 steps)
ARCH = dict(depths=(1, 1, 3, 1), dims=(32, 64, 128, 256))
PROTOCOL = dict(arch=ARCH, size=128, fcmae_epochs=20, finetune_epochs=25, fcmae_batch=64, finetune_batch=32,
                finetune_lr=5e-4, crop_scale=0.35)
# the toy fine-tuning recipe: the atto recipe (layer decay 0.9, EMA, label smoothing 0.1) without RandAugment, random
# erasing and drop path, at lr 5e-4 (the recipe's lr at batch 32 is 8e-4) and crops of 35-100 % of the image (timm's
# 8 % can cut a 'pair' class down to one object); a checkpoint at the end only
FINETUNE = ['train_dataloader.dataset.pipeline.auto_augment=None', 'train_dataloader.dataset.pipeline.re_prob=0',
            'model.backbone.drop_path_rate=0', 'model.label_smoothing=0.1']
# random init (the paper's "supervised" rows, trained from scratch) fine-tunes with the head at full scale and without
# layer decay, as a from-scratch recipe has them: the fine-tuning recipe's head_init_scale 0.001 and layer decay 0.9
# are made for a pre-trained backbone, and with them random init sat at chance (loss ln 24) for 6 to 12 of its 25
# epochs, the escape varying with the seed (top-1 14.1 / 27.9 / 29.7; docs/ABLATIONS.md, "Calibration")
SCRATCH = ['model.backbone.head_init_scale=1.0', 'optim_wrapper.paramwise_cfg.decay_rate=1.0']
MEASURED = ('backbone', 'pretrain', 'toydata', 'toyruns', 'tools/train.py', 'tools/test.py', 'benchmarks/ablations.py',
            'report/ablation.py')


@dataclass
class Row:
    """One row of a paper table: FCMAE options (`fcmae`, None: no pre-training, random init), fine-tuning options
    (`finetune`), the paper's top-1 (None: not given; `note` says why) and whether it is the paper's default."""
    name: str
    paper: float | None
    fcmae: list | None = field(default_factory=list)
    finetune: list = field(default_factory=list)
    default: bool = False
    note: str = ''


def grn(prefix: str, kind: str = 'GRN', **kw) -> list:
    """`prefix`.grn as dotted --cfg-options: dict(type=kind, **kw) replaces the paper's default GRN."""
    return [f'{prefix}.grn.type={kind}'] + [f'{prefix}.grn.{k}={v}' for k, v in kw.items()]


def both(kind: str = 'GRN', **kw) -> dict:
    """The same GRN option in FCMAE (encoder and decoder) and in fine-tuning."""
    return dict(fcmae=grn('model', kind, **kw), finetune=grn('model.backbone', kind, **kw))


def loader(mode: str) -> list:
    """The strict loader's option for a GRN added or dropped at fine-tuning."""
    return [f'model.backbone.init_cfg.grn_mismatch={mode}']


D = dict(default=True)  # the paper's choice: the configs' defaults, no options (shared by every table)
TABLES = {  # name: (where in the paper, rows)
    'grn_aggregation': ('Table 2a, GRN aggregation G', [
        Row('global average', 83.7, **both(aggregation='avg')), Row('L1', 84.3, **both(aggregation='l1')),
        Row('L2', 84.6, **D)]),
    'grn_norm': ('Table 2b, GRN normalization N', [
        Row('(‖X‖−μ)/σ', 84.5, **both(normalization='standardize')),
        Row('1/Σ‖X‖', 83.8, **both(normalization='inverse_sum')), Row('‖X‖/Σ‖X‖ (divisive)', 84.6, **D)]),
    'grn_skip': ('Table 2c, GRN residual', [Row('without', 84.0, **both(residual=False)), Row('with', 84.6, **D)]),
    'grn_vs_norms': ('Table 2d, in place of GRN', [
        Row('none', 83.7, **both('none')), Row('LRN', 83.2, **both('LRN')), Row('BN', 80.5, **both('BN')),
        Row('LN', 83.8, **both('LN')), Row('GRN', 84.6, **D)]),
    'grn_gating': ('Table 2e, feature gating', [
        Row('SE', 84.4, **both('SE')),  # CBAM's spatial gate needs the whole grid: the encoder's dense path (exact)
        Row('CBAM', 84.5, fcmae=grn('model', 'CBAM') + ['model.path=dense'], finetune=grn('model.backbone', 'CBAM')),
        Row('GRN', 84.6, **D)]),
    'grn_pt_ft': ('Table 2f, GRN in pre-training / fine-tuning', [
        Row('drop at fine-tuning', 78.8, finetune=grn('model.backbone', 'none') + loader('drop')),
        Row('add at fine-tuning', 80.6, fcmae=grn('model', 'none'), finetune=loader('add')),
        Row('both', 84.6, **D)]),
    'grn_components': ('appendix, GRN components', [
        Row('affine only', 83.9, **both(form='affine')), Row('X·G(X)', 83.9, **both(form='x_gx')),
        Row('X·N(X)', None, **both(form='x_nx'), note='unstable'), Row('full', 84.6, **D)]),
    'sparse': ('Table 1 / §3, sparse conv in the encoder', [
        Row('dense (masked regions leak)', 79.3, fcmae=['model.sparse=False']), Row('sparse', 83.7, **D)]),
    'decoder_type': ('Table 1, decoder type', [
        Row('UNet', 83.7, fcmae=['model.decoder_type=unet']),
        Row('UNet, no skips', 83.5, fcmae=['model.decoder_type=unet_noskip']),
        Row('Transformer', 83.4, fcmae=['model.decoder_type=transformer']), Row('ConvNeXt block', 83.7, **D)]),
    'decoder_depth': ('Table 1, decoder depth', [
        Row('1', 83.7, **D)] + [Row(str(d), p, fcmae=[f'model.decoder_depth={d}'])
                                for d, p in ((2, 83.5), (4, 83.7), (8, 83.6), (12, 83.3))]),
    'decoder_width': ('Table 1, decoder width', [
        Row(str(w), p, fcmae=[f'model.decoder_embed_dim={w}']) for w, p in ((128, 83.5), (256, 83.7))] + [
        Row('512', 83.7, **D)] + [Row(str(w), p, fcmae=[f'model.decoder_embed_dim={w}'])
                                  for w, p in ((768, 83.6), (1024, 83.5))]),
    'mask_ratio': ('appendix D, mask ratio (figure only: best at 0.6, good from 0.5 to 0.7)', [
        Row(str(m), None, fcmae=[f'model.mask_ratio={m}'], note='figure') for m in (0.4, 0.5)] + [
        Row('0.6', None, note='figure: best', **D)] + [
        Row(str(m), None, fcmae=[f'model.mask_ratio={m}'], note='figure') for m in (0.7, 0.8)]),
    'codesign': ('Table 3, co-design (B; the paper\'s supervised rows: 300-epoch training, here: fine-tuning from '
                 'random init at the same budget)', [
        Row('V1 supervised', 83.8, fcmae=None, finetune=['model.backbone.block=v1']),
        Row('V1 + FCMAE', 83.7, fcmae=['model.block=v1'], finetune=['model.backbone.block=v1']),
        Row('V2 supervised', 84.3, fcmae=None), Row('V2 + FCMAE', 84.6, **D)]),
    # not a paper table: the toy task's calibration (random init well below the ceiling, FCMAE clearly above it), and
    # FCMAE fine-tuned on random init's from-scratch recipe too (the comparison at one recipe)
    'toy_task': ('the toy task: random init vs the default FCMAE recipe', [
        Row('random init', None, fcmae=None), Row('FCMAE, from-scratch fine-tuning recipe', None, finetune=SCRATCH),
        Row('FCMAE', None, **D)]),
}


def describe_tables() -> str:
    """Every table with its rows and the paper's numbers (bold: the paper's default), for --help."""
    out = []
    for name, (where, rows) in TABLES.items():
        cells = [f"{'*' if r.default else ''}{r.name} {'–' if r.paper is None else f'{r.paper:g}'}"
                 f"{' (' + r.note + ')' if r.note else ''}" for r in rows]
        out.append(f'  {name}: {where}\n      ' + ' / '.join(cells))
    return '\n'.join(out) + '\n  (* the paper\'s default: the configs\' defaults, shared by every table)'


def key(options: list) -> str:
    """A folder name for a set of options: readable, and unique by a hash of them."""
    if not options:
        return 'default'
    text = '_'.join(o.replace('model.', '') for o in options)
    return re.sub(r'[^\w.=-]+', '-', text)[:60] + '-' + hashlib.sha1('\n'.join(options).encode()).hexdigest()[:6]


def arch_options(prefix: str, arch) -> list:
    """`prefix`.arch as --cfg-options: a size name, or dict(depths, dims) in place of the config's name."""
    if isinstance(arch, str):
        return [f'{prefix}.arch={arch}']
    return [f'{prefix}.arch._delete_=True'] + [f"{prefix}.arch.{k}=[{','.join(map(str, arch[k]))}]"
                                               for k in ('depths', 'dims')]


def arch_name(arch) -> str:
    return arch if isinstance(arch, str) else f"depths {'/'.join(map(str, arch['depths']))}, widths " \
                                              f"{'/'.join(map(str, arch['dims']))}"


def protocol_folder(work: Path, proto: dict, labels: int | None = None, pool: int | None = None) -> Path:
    """WORK/runs/<protocol>: one folder per protocol and data set (`labels` a class, `pool` images; None or the
    profile's value: the profile's folder), so that a run kept under one is never taken for another."""
    profile = PROFILES['ablation']  # an explicit profile value is the profile's folder
    data = [f'{k}={v}' for k, v, default in (('labels', labels, profile['imagenet']['train_per_class']),
                                             ('pool', pool, profile['unlabeled']['images'])) if v not in (None, default)]
    return work / 'runs' / key([f'{k}={v}' for k, v in sorted(proto.items())] + data)


def make_data(work: Path, labels: int | None, pool: int | None, size: int = PROTOCOL['size']) -> dict:
    """toydata's 'ablation' profile at `size` px under work/data: `labels` a class / `pool` images override, the
    held-out count stays the profile's. Written again when the profile's arguments changed (DONE holds them); the
    training and pool images are drawn before the held-out ones, so a new held-out count leaves them as they were."""
    profile = PROFILES['ablation']
    args = dict(imagenet=dict(profile['imagenet'], size=size), unlabeled=dict(profile['unlabeled'], size=[size, size]))
    args['imagenet'].update({} if labels is None else dict(train_per_class=labels))
    args['unlabeled'].update({} if pool is None else dict(images=pool))
    root = work / 'data' / f"labels{args['imagenet']['train_per_class']}_pool{args['unlabeled']['images']}_{size}px"
    done, wanted = root / 'DONE', json.dumps(args, sort_keys=True)
    if not done.is_file() or done.read_text() != wanted:
        imagenet_folder(root / 'imagenet', **args['imagenet'])
        unlabeled(root / 'unlabeled', **args['unlabeled'])
        done.write_text(wanted)
    return dict(imagenet=root / 'imagenet', unlabeled=root / 'unlabeled', classes=args['imagenet']['classes'],
                images=len(list((root / 'imagenet' / 'train').rglob('*.JPEG'))),
                pool=len(list((root / 'unlabeled').rglob('*.jpg'))),
                heldout=len(list((root / 'imagenet' / 'val').rglob('*.JPEG'))), heldout_set=args['imagenet'])


def heldout_loss(fcmae_work: Path, data: dict, size: int) -> dict:
    """The FCMAE checkpoint's masked-patch loss on the held-out labeled images (its own mask ratio), kept in
    fcmae_work/heldout.json with the held-out set it was measured on (measured again when that changed)."""
    out = fcmae_work / 'heldout.json'
    if not out.is_file() or load_json(out).get('heldout_set') != data['heldout_set']:
        from mmengine.config import Config

        from pretrain.evaluate import reconstruction_losses
        from report.results import dumped_config
        images = sorted(str(p) for p in (Path(data['imagenet']) / 'val').rglob('*.JPEG'))
        cfg = Config.fromfile(dumped_config(fcmae_work))  # the run's own model options
        ckpt = load_json(fcmae_work / 'result.json')['checkpoint']
        save_json(out, dict(reconstruction_losses(cfg, ckpt, images, size), heldout_set=data['heldout_set']))
    return load_json(out)


class Progress:
    """Counts finished jobs and prints an ETA from the mean time of the runs that really ran, per stage."""

    def __init__(self, total: int, workers: int, log=print):
        self.total, self.workers, self.log, self.done, self.times = total, workers, log, 0, {}
        self.left = {}
        self.lock = threading.Lock()

    def expect(self, stage: str) -> None:
        self.left[stage] = self.left.get(stage, 0) + 1

    def finished(self, stage: str, seconds: float, ran: bool) -> None:
        with self.lock:
            self.done += 1
            self.left[stage] -= 1
            if ran:
                self.times.setdefault(stage, []).append(seconds)
            known = {s: statistics.mean(t) for s, t in self.times.items()}
            if len(known) == len(self.left) or all(s in known for s, n in self.left.items() if n):
                eta = sum(n * known.get(s, 0) for s, n in self.left.items()) / self.workers / 60
                eta = f'ETA ~{eta:.0f} min'
            else:
                eta = 'ETA after the first run of each stage'
            self.log(f'  progress: {self.done}/{self.total} runs done, {eta}')


def guarded(fn, stage: str, progress: Progress):
    """A job that returns dict(failed=reason) instead of raising (a diverging row must not stop the table)."""
    def run(results):
        t0 = time.time()
        try:
            out = fn(results)
        except Exception as e:  # noqa: BLE001 - the table records the failure by row and goes on
            lines = [x.strip() for x in str(e).splitlines() if x.strip()]  # a failed run: its log's last line
            out = dict(failed=f"{type(e).__name__}: {lines[-1][:200] if lines else ''}")
        progress.finished(stage, time.time() - t0, ran='failed' in out or not out.get('kept'))
        return out
    return run


def fcmae_toy(data: dict, proto: dict, seed: int, options: list) -> Toy:
    """A row's FCMAE run under the protocol: its options after the protocol's size (and lr, when it sets one)."""
    lr = [f"optim_wrapper.optimizer.lr={proto['fcmae_lr']}"] if proto.get('fcmae_lr') is not None else []
    return Toy('fcmae', str(data['unlabeled']), proto['fcmae_epochs'], proto['size'], proto['fcmae_batch'], seed,
               extra=[*arch_options('model', proto['arch']), *lr, *options,
                      f"default_hooks.checkpoint.interval={proto['fcmae_epochs']}"])


def fcmae_cost(toy: Toy) -> dict:
    """What a FCMAE run's model costs, built as tools/train.py builds it: forward FLOPs of one image at the run's
    size (torch's FlopCounterMode: a multiply-add is 2 FLOPs; convolutions and matmuls) and the encoder's and the
    decoder's (projection, mask token, blocks and prediction head) parameters; and the peak lr the run trains at."""
    import torch
    from mmengine.registry import MODELS
    from torch.utils.flop_counter import FlopCounterMode

    import pretrain  # noqa: F401  (registers FCMAE)
    from runtime.config import scale_lr
    cfg = toy.train_config()
    scale_lr(cfg, world_size=1)  # as the run sets it when it starts
    model = MODELS.build(cfg.model).eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, 3, toy.size, toy.size), mode='tensor')
    encoder = sum(p.numel() for p in model.encoder.parameters())
    return dict(flops=counter.get_total_flops(), encoder_params=encoder, lr=cfg.optim_wrapper.optimizer.lr,
                decoder_params=sum(p.numel() for p in model.parameters()) - encoder)


def print_cost(tables: list, proto: dict) -> dict:
    """--cost: each FCMAE row's cost and lr under the protocol (fcmae_cost), a line per row; nothing is run."""
    out = {}
    print(f"FCMAE forward of one {proto['size']}-px image (MFLOPs; a multiply-add is 2) and parameters (M), "
          f"ConvNeXt V2 {arch_name(proto['arch'])}:")
    for table in tables:
        for row in TABLES[table][1]:
            if row.fcmae is None:
                continue
            name = key(row.fcmae)
            if name not in out:
                out[name] = fcmae_cost(fcmae_toy({'unlabeled': 'pool'}, proto, 0, row.fcmae))
            c = out[name]
            print(f"  {table:>15} {row.name:<30} {c['flops'] / 1e6:7.0f} MFLOPs  encoder "
                  f"{c['encoder_params'] / 1e6:.2f}M  decoder {c['decoder_params'] / 1e6:.2f}M  lr {c['lr']:g}"
                  f"{'  (default)' if row.default else ''}")
    return out


def finetune_toy(data: dict, proto: dict, seed: int, options: list) -> Toy:
    """A row's fine-tuning run under the protocol (FINETUNE, its lr and crop area): its options last."""
    return Toy('finetune', str(data['imagenet']), proto['finetune_epochs'], proto['size'], proto['finetune_batch'],
               seed, images=data['images'], classes=data['classes'],
               extra=[*arch_options('model.backbone', proto['arch']), *FINETUNE,
                      f"optim_wrapper.optimizer.lr={proto['finetune_lr']}",
                      f"train_dataloader.dataset.pipeline.scale=({proto['crop_scale']},1.0)",
                      f"default_hooks.checkpoint.interval={proto['finetune_epochs']}", *options])


def finetune_options(row: Row) -> list:
    """A row's fine-tuning options: a row from random init (fcmae None) gets the from-scratch recipe first."""
    return row.finetune if row.fcmae is not None else SCRATCH + row.finetune


def plan(tables: list, seeds: list, work: Path, data: dict, proto: dict, progress: Progress) -> tuple[list, dict]:
    """The jobs of `tables` (shared runs once) and, per table row and seed, the job names it reads."""
    jobs, names = {}, {}
    for table in tables:
        for row in TABLES[table][1]:
            for seed in seeds:
                pt = None if row.fcmae is None else key(row.fcmae)
                pt_job = None if pt is None else f'fcmae/{pt}/seed{seed}'
                ft_job = f"finetune/{pt or 'random'}+{key(finetune_options(row))}/seed{seed}"
                if pt_job and pt_job not in jobs:
                    toy = fcmae_toy(data, proto, seed, row.fcmae)
                    jobs[pt_job] = Job(pt_job, guarded(lambda r, t=toy, w=work / pt_job: run_fcmae(t, w, data),
                                                       'fcmae', progress),
                                       describe=lambda r: r.get('failed') or f"loss {r['loss']:.3f}")
                    progress.expect('fcmae')
                if ft_job not in jobs:
                    toy = finetune_toy(data, proto, seed, finetune_options(row))
                    jobs[ft_job] = Job(ft_job, guarded(lambda r, t=toy, w=work / ft_job, s=pt_job: run_finetune(
                        t, w, r.get(s), data['heldout_set']), 'finetune', progress), (pt_job,) if pt_job else (),
                        describe=lambda r: r.get('failed') or f"top-1 {r['top1']:.1f}")
                    progress.expect('finetune')
                names[(table, row.name, seed)] = (pt_job, ft_job)
    order = sorted(jobs.values(), key=lambda j: (j.name.split('/')[-1], not j.name.startswith('fcmae')))
    progress.total = len(order)
    return order, names


def run_fcmae(toy: Toy, work: Path, data: dict) -> dict:
    kept = (work / 'result.json').is_file()
    result = run_stage(toy, work)
    return dict(checkpoint=result['checkpoint'], loss=result['loss'], kept=kept, train_s=result.get('train_s'),
                heldout=heldout_loss(work, data, toy.size))


def run_finetune(toy: Toy, work: Path, source: dict | None, heldout_set: dict) -> dict:
    """A fine-tuning run from `source` (None: random init); a kept run tested on another held-out set than
    `heldout_set` is tested again (its training does not depend on it)."""
    if source is not None and 'failed' in source:
        return dict(failed=f"pre-training failed ({source['failed']})")
    kept = (work / 'result.json').is_file()
    result = run_stage(toy, work, None if source is None else source['checkpoint'])
    if result.get('heldout_set') != heldout_set:
        result = retest(toy, work, heldout_set=heldout_set) if kept else save_json(
            work / 'result.json', dict(result, heldout_set=heldout_set))
    return dict(top1=result['metrics']['accuracy/top1'], kept=kept, train_s=result.get('train_s'),
                test_s=result.get('test_s'))


def summarize(table: str, seeds: list, names: dict, results: dict, proto: dict, data: dict) -> dict:
    """A table's rows: mean, std and values over seeds, the paper's number, differences from the default row with a
    verdict, the held-out FCMAE loss; Kendall's tau between the paper's and the measured order."""
    from report.ablation import kendall_tau, verdict
    where, rows = TABLES[table]
    out = []
    for row in rows:
        ft = [results[names[(table, row.name, s)][1]] for s in seeds]
        pt = [results[names[(table, row.name, s)][0]] for s in seeds] if row.fcmae is not None else []
        values = [r['top1'] for r in ft if 'top1' in r]
        entry = dict(name=row.name, paper=row.paper, paper_note=row.note, default=row.default, fcmae=row.fcmae,
                     finetune=finetune_options(row), values=values, run_s=[r.get('train_s') for r in ft + pt])
        if len(values) == len(seeds):
            entry.update(mean=round(statistics.mean(values), 2),
                         std=round(statistics.stdev(values), 2) if len(values) > 1 else 0.)
        else:
            entry['failed'] = next(r['failed'] for r in ft if 'failed' in r)
        losses = [r['heldout']['loss'] for r in pt if 'heldout' in r]
        entry['heldout_loss'] = round(statistics.mean(losses), 4) if losses and len(losses) == len(pt) else None
        out.append(entry)
    base = next(r for r in out if r['default'])
    for r in out:
        if r['default'] or r.get('mean') is None or base.get('mean') is None:
            continue
        r['delta'] = round(r['mean'] - base['mean'], 2)
        r['paper_delta'] = None if r['paper'] is None or base['paper'] is None else round(r['paper'] - base['paper'], 2)
        r['resolution'] = round(2 * max(r['std'], base['std']), 2)
        r['verdict'] = verdict(r['delta'], r['paper_delta'], r['resolution'])
    both = [r for r in out if r['paper'] is not None and r.get('mean') is not None]
    tau = kendall_tau([r['paper'] for r in both], [r['mean'] for r in both]) if len(both) > 1 else None
    fcmae_lr = '' if proto.get('fcmae_lr') is None else f", peak lr {proto['fcmae_lr']:g}"
    note = (f"Toy protocol: ConvNeXt V2 {arch_name(proto['arch'])}, {proto['size']} px, FCMAE "
            f"{proto['fcmae_epochs']} epochs over {data['pool']} unlabeled images (batch {proto['fcmae_batch']}"
            f"{fcmae_lr}), "
            f"fine-tuning {proto['finetune_epochs']} epochs on {data['images']} labeled images of {data['classes']} "
            f"classes (batch {proto['finetune_batch']}, lr {proto['finetune_lr']:g}, crops of "
            f"{proto['crop_scale']:g}-1 of the image; from random init: head at full scale, no layer decay), "
            f"top-1 on {data['heldout']} held-out images; seeds {seeds}. Held-out FCMAE loss: masked-patch loss on the "
            'held-out images at the row\'s own mask ratio (lower is better; not comparable across mask ratios).')
    return dict(table=table, where=where, seeds=list(seeds), protocol=proto, rows=out,
                kendall_tau=None if tau is None else round(tau, 3), tau_rows=len(both), note=note)


def publish(summary: dict, command: str, wall_s: float, root: Path | None = None) -> Path:
    """docs/results/ablation_<table>.md (stamped) and its plot docs/figures/ablation_<table>.png."""
    from report.ablation import plot_table, table_markdown
    from report.stamp import ROOT as REPO, write_results
    root = Path(root or REPO)
    table = summary['table']
    figure = root / 'docs' / 'figures' / f'ablation_{table}.png'
    figure.parent.mkdir(parents=True, exist_ok=True)
    plot_table(summary, figure)
    runs = [s for r in summary['rows'] for s in r['run_s'] if s]
    md = (f"# Ablation on toy data: {table}\n\nPaper: {summary['where']}.\n\n" + table_markdown(summary)
          + f"\n![{table}](../figures/{figure.name})\n\nRun times: {len(runs)} runs, "
          f"{statistics.mean(runs) / 60 if runs else 0:.1f} min of training each on average, {sum(runs) / 60:.0f} "
          f"min in all (runs shared with other tables counted here too); {wall_s / 60:.0f} min wall for what this "
          'invocation ran (finished runs are kept and not rerun).\n')
    tau = summary['kendall_tau']
    headline = (f"{table}: Kendall tau vs the paper {'–' if tau is None else f'{tau:+.2f}'}; "
                + ', '.join(f"{r['name']} {r['mean']:.1f}" for r in summary['rows'] if r.get('mean') is not None))
    return write_results(f'ablation_{table}', md, command, MEASURED, root=root, headline=headline)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], epilog=describe_tables(),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('tables', nargs='+', metavar='TABLE', help=f'one or more of: {", ".join(TABLES)}')
    p.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    p.add_argument('--jobs', type=int, default=2, help='runs at a time (one core each)')
    p.add_argument('--work', default='work_dirs/ablations', help='data, runs and <table>.json go here')
    p.add_argument('--fcmae-epochs', type=int, default=PROTOCOL['fcmae_epochs'])
    p.add_argument('--finetune-epochs', type=int, default=PROTOCOL['finetune_epochs'])
    p.add_argument('--size', type=int, default=PROTOCOL['size'], help='image side (a multiple of 32)')
    p.add_argument('--finetune-lr', type=float, default=PROTOCOL['finetune_lr'])
    p.add_argument('--fcmae-lr', type=float, help="FCMAE's peak lr for every row (default: the recipe's, 2.4e-3)")
    p.add_argument('--labels', type=int, help='labeled images a class (default: the profile\'s)')
    p.add_argument('--pool', type=int, help='unlabeled images (default: the profile\'s)')
    p.add_argument('--no-publish', action='store_true', help='leave docs/ as it is (trial runs)')
    p.add_argument('--cost', action='store_true', help="print each FCMAE row's FLOPs, parameters and lr; run nothing")
    args = p.parse_args(argv)
    if hasattr(sys.stdout, 'reconfigure'):  # progress lines show up at once in a log file too
        sys.stdout.reconfigure(line_buffering=True)
    unknown = [t for t in args.tables if t not in TABLES]
    if unknown:
        p.error(f'unknown table(s) {unknown}: expected names from {list(TABLES)}')
    t0, work = time.monotonic(), Path(args.work).resolve()
    proto = dict(PROTOCOL, fcmae_epochs=args.fcmae_epochs, finetune_epochs=args.finetune_epochs, size=args.size,
                 finetune_lr=args.finetune_lr)
    if args.fcmae_lr is not None:  # only when set: the default protocol keeps its run folder (and its kept runs)
        proto['fcmae_lr'] = args.fcmae_lr
    if args.cost:
        return print_cost(args.tables, proto)
    data = make_data(work, args.labels, args.pool, args.size)
    progress = Progress(0, args.jobs)
    runs = protocol_folder(work, proto, args.labels, args.pool)
    jobs, names = plan(args.tables, args.seeds, runs, data, proto, progress)
    print(f'ablations: {len(jobs)} runs for {args.tables} ({len(args.seeds)} seeds) on {args.jobs} slots')
    results, _ = run_jobs(jobs, args.jobs)
    command = shlex.join(['python', 'benchmarks/ablations.py', *(sys.argv[1:] if argv is None else argv)])
    out = {}
    for table in args.tables:
        summary = summarize(table, args.seeds, names, results, proto, data)
        (work / f'{table}.json').write_text(json.dumps(summary, indent=1))
        from report.ablation import table_markdown
        print(f'\n## {table}\n\n{table_markdown(summary)}')
        if not args.no_publish:
            print(f'{table}: wrote {publish(summary, command, time.monotonic() - t0)}')
        out[table] = summary
    return out


if __name__ == '__main__':
    main()
