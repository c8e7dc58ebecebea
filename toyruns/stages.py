"""The suite's real configs at toy scale: per stage, the --cfg-options that change sizes and lengths only (data root,
image and crop size, CPU-sized heads, batch, epochs or iterations, warm-up and EMA horizon scaled to the run), and
`run_stage`, which trains through tools/train.py and evaluates through tools/test.py or tools/seg_eval.py, each in a
subprocess of its own (one thread), so that runs can share a machine's cores. The demo (toyruns.demo), the toy
studies (toyruns.study) and the tests all build their runs here."""
import json
import os
import subprocess
import sys
import time
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = dict(fcmae='pretrain/configs/fcmae_cnx2_atto.py', finetune='pretrain/configs/finetune_cnx2_atto.py',
               det='det_configs/mask_rcnn_cnx2_a.py', seg='seg_configs/upernet_cnx2_a.py',
               simmim='pretrain/configs/simmim_swin_b.py')  # simmim: with the atto-sized Swin of swin_arch
PRETRAIN = ('fcmae', 'simmim')  # stages without a test step: their result is the last logged loss and the checkpoint
COCO_CLASSES = ('circle', 'square', 'triangle')  # toydata.coco_instances' default classes
DET_HEADS = {  # Mask R-CNN heads at CPU size: 64 FPN channels, 32 sampled RoIs, 50 proposals (paper: 256 / 512 / 1000)
    'neck.out_channels': 64, 'rpn_head.in_channels': 64, 'rpn_head.feat_channels': 64,
    'roi_head.bbox_roi_extractor.out_channels': 64, 'roi_head.mask_roi_extractor.out_channels': 64,
    'roi_head.bbox_head.in_channels': 64, 'roi_head.bbox_head.fc_out_channels': 128,
    'roi_head.mask_head.in_channels': 64, 'roi_head.mask_head.conv_out_channels': 64,
    'train_cfg.rpn.sampler.num': 64, 'train_cfg.rpn_proposal.nms_pre': 200, 'train_cfg.rpn_proposal.max_per_img': 50,
    'train_cfg.rcnn.sampler.num': 32, 'test_cfg.rpn.nms_pre': 200, 'test_cfg.rpn.max_per_img': 50,
    'test_cfg.rcnn.max_per_img': 20}
CASCADE_HEADS = {  # Cascade Mask R-CNN (det_configs/cascade_*): DET_HEADS, with each of the 3 box heads and RoI
    **{k: v for k, v in DET_HEADS.items() if not k.startswith(('roi_head.bbox_head', 'train_cfg.rcnn'))},  # samplers
    **{f'roi_head.bbox_head.{i}.{k}': v for i in range(3) for k, v in (
        ('in_channels', 64), ('conv_out_channels', 64), ('fc_out_channels', 128))},  # paper: 256 / 256 / 1024
    **{f'train_cfg.rcnn.{i}.sampler.num': 32 for i in range(3)}}
SEG_HEADS = {'decode_head.channels': 128, 'auxiliary_head.channels': 64}  # UPerNet at CPU size (paper: 512 / 256)
SEG_SCALES = (0.75, 0.875, 1.0, 1.125, 1.25)  # seg_configs/_base_/ade20k_ms_test.py, times the toy test size
SWIN_CONFIGS = dict(det='det_configs/mask_rcnn_swin_b_simmim.py', seg='seg_configs/upernet_swin_b_simmim.py')
SWIN_HEAD_DIM = 20  # Swin-B: 128 channels / 4 heads = 32; atto-sized Swin: 40 / 2


def swin_arch(arch: str = 'atto') -> dict:
    """The Swin with a ConvNeXt V2 size's widths and depths: embed_dims, depths, num_heads and the stage widths."""
    from backbone.convnextv2 import VARIANTS  # here: the demo's driver process needs no torch
    depths, dims = VARIANTS[arch]['depths'], VARIANTS[arch]['dims']
    widths = [dims[0] * 2 ** i for i in range(4)]
    return dict(embed_dims=dims[0], depths=list(depths), num_heads=[w // SWIN_HEAD_DIM for w in widths], widths=widths)


def swin_options(stage: str, arch: str = 'atto') -> list:
    """The Swin baseline with a ConvNeXt V2 size's widths and depths (random init unless --pretrained) in `stage`
    ('det', 'seg'): the backbone, and the neck's or heads' in_channels that follow from it (embed_dims x 1, 2, 4, 8)."""
    a = swin_arch(arch)
    widths = a['widths']
    backbone = [f'model.backbone.embed_dims={a["embed_dims"]}',
                f'model.backbone.depths=({",".join(map(str, a["depths"]))})',
                f'model.backbone.num_heads=({",".join(map(str, a["num_heads"]))})']  # init: train_command's
    if stage == 'det':
        return backbone + [f'model.neck.in_channels=[{",".join(map(str, widths))}]']
    return backbone + [f'model.decode_head.in_channels=[{",".join(map(str, widths))}]',
                       f'model.auxiliary_head.in_channels={widths[2]}']


def head_options(stage: str) -> list:
    """The CPU-sized heads of `stage` ('det', 'seg', 'cascade') as --cfg-options (tools/demo.sh reads them from
    here)."""
    return [f'model.{k}={v}' for k, v in dict(det=DET_HEADS, seg=SEG_HEADS, cascade=CASCADE_HEADS)[stage].items()]


def loaders(*splits) -> list:
    """No loader worker processes: toy images are tiny, spawning costs more than loading."""
    return [f'{s}_dataloader.{k}' for s in splits for k in ('num_workers=0', 'persistent_workers=False')]


def no_val() -> list:
    """Train without in-loop validation; the test step evaluates the final checkpoint once."""
    return ['val_cfg=None', 'val_dataloader=None', 'val_evaluator=None']


@dataclass
class Toy:
    """One toy run: `length` is epochs (fcmae, simmim, finetune, det) or iterations (seg); `size` the image / crop
    side."""
    stage: str
    data: str  # the dataset folder: the unlabeled pool, toy ImageNet, COCO or ADE20K root
    length: int
    size: int = 128
    batch: int = 4
    seed: int = 0
    images: int = 0  # training images (det / finetune: to turn epochs into optimizer steps for warm-up and EMA)
    classes: int = 4  # finetune: number of ImageNet classes
    extra: list = field(default_factory=list)  # further --cfg-options (e.g. model.block=v1, swin_options)
    config: str = ''  # a config other than CONFIGS[stage] of the same stage (e.g. SWIN_CONFIGS['det'])

    def __post_init__(self):
        if self.stage not in CONFIGS:
            raise ValueError(f'Toy stage {self.stage!r}: expected one of {sorted(CONFIGS)}')
        if self.size % 32:
            raise ValueError(f'Toy size {self.size}: expected a multiple of 32 (FCMAE / SimMIM mask cells, backbone '
                             'stride)')

    def config_file(self) -> Path:
        return ROOT / (self.config or CONFIGS[self.stage])

    def steps(self) -> int:
        per_epoch = max(1, self.images // self.batch)
        return self.length if self.stage == 'seg' else self.length * per_epoch

    def train_options(self) -> list:
        seed = [f'randomness.seed={self.seed}', 'default_hooks.logger.interval=10']
        return getattr(self, f'_{self.stage}')() + seed + list(self.extra)

    def train_config(self):
        """The config tools/train.py builds for this run: the stage's file under train_options(), parsed by mmengine's
        own --cfg-options parser (to inspect the run's model without running it)."""
        import argparse
        from mmengine.config import Config, DictAction
        ns = argparse.Namespace()
        DictAction(option_strings=[], dest='options')(None, ns, self.train_options())
        cfg = Config.fromfile(str(self.config_file()))
        cfg.merge_from_dict(ns.options)
        return cfg

    def test_options(self) -> list:
        """The same model and data as training, at the test pipeline's size (no training options)."""
        s = self.size
        if self.stage == 'finetune':
            return [o for o in self._finetune() if not o.startswith(('train', 'custom_hooks', 'optim'))] + list(
                self.extra)  # e.g. model.backbone.block=v1: the model trained
        if self.stage == 'det':
            return self._det_common() + loaders('test') + [
                f'test_dataloader.dataset.metainfo.classes={",".join(COCO_CLASSES)}',
                f'test_dataloader.dataset.pipeline.1.scale=({s},{s})'] + list(self.extra)
        if self.stage == 'seg':
            opts = self._seg_common() + loaders('test') + [
                f'model.test_cfg.crop_size=({s},{s})', f'model.test_cfg.stride=({2 * s // 3},{2 * s // 3})',
                f'test_dataloader.dataset.pipeline.1.scale=({4 * s},{s})']  # 2048x512 -> 4s x s, as training
            opts += [f'tta_pipeline.1.transforms.0.{i}.scale=({int(4 * s * r)},{int(s * r)})'
                     for i, r in enumerate(SEG_SCALES)]
            return opts + list(self.extra)
        raise ValueError(f'stage {self.stage!r} has no test step')

    def _fcmae(self) -> list:
        warm = max(1, self.length // 20)  # 40 of 800 epochs
        return [f'data_root={self.data}', 'train_dataloader.dataset.split=None', f'train_cfg.max_epochs={self.length}',
                *loaders('train'), f'train_dataloader.batch_size={self.batch}', 'train_dataloader.pin_memory=False',
                'optim_wrapper.accumulative_counts=1', f'train_dataloader.dataset.pipeline.size={self.size}',
                f'param_scheduler.0.end={warm}', f'param_scheduler.1.begin={warm}',
                'default_hooks.checkpoint.max_keep_ckpts=1']

    def _simmim(self) -> list:
        """The atto-sized Swin (swin_arch) on the FCMAE pool: mask patch 32 and model patch 4 as the recipe, window
        size // 32 (the recipe's window 6 at 192 px: the last stage's whole map); warm-up 10 and decay at 700 of 800
        epochs, scaled to the run."""
        a, s, n = swin_arch(), self.size, self.length
        warm = max(1, round(n * 10 / 800))
        decay = max(warm + 1, round(n * 700 / 800))
        arch = 'model.backbone.arch'
        return [f'data_root={self.data}', 'train_dataloader.dataset.dataset.split=None', *loaders('train'),
                f'train_cfg.max_epochs={n}', f'train_dataloader.batch_size={self.batch}',
                'train_dataloader.pin_memory=False', 'optim_wrapper.accumulative_counts=1',
                f'{arch}._delete_=True', f'{arch}.embed_dims={a["embed_dims"]}',  # a dict in place of 'base'
                f'{arch}.depths={a["depths"]}'.replace(' ', ''), f'{arch}.num_heads={a["num_heads"]}'.replace(' ', ''),
                f'model.backbone.img_size={s}', f'model.backbone.stage_cfgs.block_cfgs.window_size={s // 32}',
                f'model.neck.in_channels={a["widths"][-1]}', f'train_dataloader.dataset.pipeline.0.scale={s}',
                f'train_dataloader.dataset.pipeline.2.input_size={s}', f'param_scheduler.0.end={warm}',
                f'param_scheduler.1.begin={warm}',
                f'param_scheduler.1.end={max(n, warm + 1)}',  # a 1-epoch run never reaches it
                f'param_scheduler.1.milestones=[{decay - warm}]',  # counted from `begin`, as the config's
                'default_hooks.checkpoint.max_keep_ckpts=1']

    def _finetune(self) -> list:
        opts = [f'data_root={self.data}', f'model.backbone.num_classes={self.classes}', *loaders('train', 'test'),
                f'train_cfg.max_epochs={self.length}', 'optim_wrapper.accumulative_counts=1',
                f'custom_hooks.0.momentum={min(0.1, 10 / self.steps()):.4g}',  # EMA horizon: a tenth of the run
                'default_hooks.checkpoint.max_keep_ckpts=1', 'default_hooks.checkpoint.save_best=None']
        for split in ('train', 'test'):
            opts += [f'{split}_dataloader.batch_size={self.batch}', f'{split}_dataloader.pin_memory=False',
                     f'{split}_dataloader.dataset.pipeline.size={self.size}']
        return opts + no_val()

    def _det_common(self) -> list:
        return head_options('det') + [
            f'data_root={self.data}/', f'model.roi_head.bbox_head.num_classes={len(COCO_CLASSES)}',
            f'model.roi_head.mask_head.num_classes={len(COCO_CLASSES)}']

    def _det(self) -> list:
        s, e = self.size, self.length
        return self._det_common() + no_val() + loaders('train') + [
            f'train_dataloader.dataset.metainfo.classes={",".join(COCO_CLASSES)}',
            f'train_dataloader.batch_size={self.batch}', f'train_cfg.max_epochs={e}',
            f'train_dataloader.dataset.pipeline.2.scale=({s},{s})',  # LSJ 1024 -> s, crop s, ratio 0.1-2.0 kept
            f'train_dataloader.dataset.pipeline.3.crop_size=({s},{s})',
            f'param_scheduler.0.end={max(1, self.steps() // 10)}',  # 1000-iteration warm-up -> a tenth of the run
            f'param_scheduler.1.milestones=[{round(e * 27 / 36)},{round(e * 33 / 36)}]',  # 3x: epochs 27, 33 of 36
            'default_hooks.checkpoint.max_keep_ckpts=1']

    def _seg_common(self) -> list:
        return head_options('seg') + [
            f'data_root={self.data}', f'model.data_preprocessor.size=({self.size},{self.size})']

    def _seg(self) -> list:
        s, n = self.size, self.length
        warm = max(1, n // 10)  # 1500 of 160k iterations (~1 %) -> a tenth: short runs need a longer ramp
        return self._seg_common() + no_val() + loaders('train') + [
            f'train_dataloader.dataset.pipeline.2.scale=({4 * s},{s})',  # 2048x512, ratio 0.5-2.0 kept
            f'train_dataloader.dataset.pipeline.3.crop_size=({s},{s})', f'train_dataloader.batch_size={self.batch}',
            f'train_cfg.max_iters={n}', f'param_scheduler.0.end={warm}', f'param_scheduler.1.begin={warm}',
            f'param_scheduler.1.end={n}', f'default_hooks.checkpoint.interval={n}',
            'default_hooks.checkpoint.max_keep_ckpts=1']


def final_checkpoint(toy: Toy, work: Path) -> Path:
    return Path(work) / (f'iter_{toy.length}.pth' if toy.stage == 'seg' else f'epoch_{toy.length}.pth')


def train_command(toy: Toy, work, init: str | None = None) -> list:
    """tools/train.py's arguments for `toy` in `work` from `init` (--pretrained; None: random init)."""
    train = [ROOT / 'tools/train.py', toy.config_file(), '--work-dir', work, '--resume', '--cfg-options',
             *toy.train_options()]
    if init:
        train += ['--pretrained', init]
    elif toy.stage in ('det', 'seg'):
        train.append('model.backbone.init_cfg=None')  # random init, not the model zoo's weights
    return train


def test_command(toy: Toy, work, single_scale: bool = True) -> tuple[list, Path]:
    """(tools/test.py or tools/seg_eval.py arguments for the final checkpoint of `toy` in `work`, its JSON)."""
    work, ckpt, config = Path(work), final_checkpoint(toy, work), toy.config_file()
    if toy.stage == 'seg':
        out = work / 'seg_eval.json'
        return [ROOT / 'tools/seg_eval.py', config, ckpt, '--work-dir', work / 'eval', '--json-out', out,
                *(['--single-scale'] if single_scale else []), '--cfg-options', *toy.test_options()], out
    out = work / 'test_results.json'
    return [ROOT / 'tools/test.py', config, ckpt, '--work-dir', work / 'test', '--json-out', out,
            '--cfg-options', *toy.test_options()], out


def call(args: list, log: Path, show: Callable | None = None):
    """`python ARGS` from the repository root on one thread, its output appended to `log` and each line passed to
    `show`; a failure raises with the log's last lines."""
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=str(ROOT), PYTHONUNBUFFERED='1')
    with open(log, 'a') as f:
        f.write(f'$ {" ".join(map(str, args))}\n')
        f.flush()
        proc = subprocess.Popen([sys.executable, *map(str, args)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, errors='replace')
        for line in proc.stdout:
            f.write(line)
            if show:
                show(line.rstrip('\n'))
        code = proc.wait()
    if code:
        tail = ''.join(open(log, errors='replace').readlines()[-25:])
        raise RuntimeError(f'{args[0]} failed (exit {code}); log {log}, last lines:\n{tail}')


def run_step(kind: str, done: Path, fn: Callable):
    """run_stage's default for each step ('train', 'test'): run `fn` unless `done` exists; it must write `done`."""
    if not done.exists():
        fn()
        if not done.exists():
            raise RuntimeError(f'the {kind} step did not write {done}')


DEFAULTS = {f.name: f.default if f.default is not MISSING else f.default_factory() for f in fields(Toy)
            if (f.default, f.default_factory) != (MISSING, MISSING)}  # what an older result.json did not record


def kept_result(result_file: Path, spec: dict) -> dict | None:
    """The result of a finished run in the same folder with the same settings (None: not finished); other settings
    are an error (a field added to Toy since then counts as its default)."""
    if not result_file.is_file():
        return None
    result = load_json(result_file)
    kept = result.get('toy', spec)
    changed = sorted(k for k in spec if kept.get(k, DEFAULTS.get(k)) != spec[k])
    if changed:
        raise ValueError(f'{result_file.parent} holds a finished run with other settings ({", ".join(changed)}: '
                         f'{[kept.get(k) for k in changed]} there, {[spec[k] for k in changed]} now); '
                         'remove that folder to rerun it, or choose another work dir')
    return result


def run_stage(toy: Toy, work, init: str | None = None, single_scale: bool = True, show: Callable | None = None,
              step: Callable = run_step) -> dict:
    """Train `toy` in `work` from `init` (a checkpoint for --pretrained; None: random init), then evaluate its final
    checkpoint; returns and writes work/result.json (kept: a finished run is not repeated). FCMAE and SimMIM have no
    test: their result is the last logged loss and the checkpoint. Each step goes through `step(kind, done_file, fn)`
    (the demo prints its banners there) and shows its output lines through `show`; both steps are skipped when done."""
    work, spec = Path(work), dict(asdict(toy), init=init)
    result_file = work / 'result.json'
    kept = kept_result(result_file, spec)
    work.mkdir(parents=True, exist_ok=True)
    log, ckpt = work / 'run.log', final_checkpoint(toy, work)
    t0 = time.time()
    step('train', result_file if kept else ckpt, lambda: call(train_command(toy, work, init), log, show))
    t1 = time.time()
    if toy.stage not in PRETRAIN:
        test, out = test_command(toy, work, single_scale)
        step('test', result_file if kept else out, lambda: call(test, log, show))
    if kept:
        return kept
    result = dict(stage=toy.stage, init=init, seed=toy.seed, length=toy.length, checkpoint=str(ckpt),
                  published=published_file(work), toy=spec)
    result.update(dict(loss=last_losses(work)[-1]) if toy.stage in PRETRAIN else metrics_of(toy, out))
    result.update(train_s=round(t1 - t0, 1), test_s=round(time.time() - t1, 1))
    return save_json(result_file, result)


def metrics_of(toy: Toy, out: Path) -> dict:
    """What a run's result keeps of its test JSON: seg_eval's whole record, tools/test.py's metrics."""
    record = load_json(out)
    return record if toy.stage == 'seg' else dict(metrics=record['metrics'])


def retest(toy: Toy, work, single_scale: bool = True, show: Callable | None = None, **record) -> dict:
    """Test a finished run's final checkpoint again (e.g. its held-out set changed; training is not repeated): its
    result.json with the new test, its time and `record`."""
    work = Path(work)
    result = load_json(work / 'result.json')
    test, out = test_command(toy, work, single_scale)
    out.unlink(missing_ok=True)
    t0 = time.time()
    call(test, work / 'run.log', show)
    return save_json(work / 'result.json', dict(result, **metrics_of(toy, out), test_s=round(time.time() - t0, 1),
                                                **record))


def load_json(path) -> dict:
    """A run's JSON record; one that is not JSON is an error naming the file (remove it to measure or run again)."""
    try:
        return json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f'{path}: not a JSON record ({e}); remove it to measure that again') from None


def save_json(path: Path, obj: dict) -> dict:
    """`obj` as JSON at `path`, written whole or not at all (a killed run leaves the old file); returns `obj`."""
    tmp = Path(path).with_suffix('.tmp')
    tmp.write_text(json.dumps(obj, indent=1))
    tmp.replace(path)
    return obj


def published_file(work) -> str | None:
    """The weights-only file that the run's PublishCheckpointHook wrote last (runtime.publish), if any."""
    files = sorted(Path(work).glob('published/*.pth'), key=lambda p: p.stat().st_mtime)
    return str(files[-1]) if files else None


def last_losses(work) -> list:
    """The `loss` of every logged training iteration of the run in `work` (mmengine's scalars.json)."""
    files = sorted(Path(work).glob('*/vis_data/scalars.json'))
    if not files:
        raise FileNotFoundError(f'{work}: no */vis_data/scalars.json (mmengine writes one per run)')
    return [rec['loss'] for f in files for rec in map(json.loads, f.read_text().splitlines()) if 'loss' in rec]
