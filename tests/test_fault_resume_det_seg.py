"""Exact resume after SIGKILL for the transfer stages: Mask R-CNN (epoch-based, LSJ resize/crop/flip, drop
path, a loader worker process) and UPerNet (iteration-based, InfiniteSampler replayed by mmengine, no fixed seed)
killed after a checkpoint and resumed with `--resume` end with the weights, optimizer and schedulers of an
uninterrupted run of the same seed, bitwise on CPU."""
import signal
from pathlib import Path

import torch

from runtime import mmengine_checkpoints
from toydata import ade20k, coco_instances

LEAF = '''_base_ = '{base}'
custom_imports = dict(imports=_base_.custom_imports['imports'] + ['fault_helper'], allow_failed_imports=False)
custom_hooks = {hooks}
'''
WITH_HOOK, WITHOUT_HOOK = "[dict(type='ResumeStateHook'), dict(type='KillAt')]", "[dict(type='KillAt')]"
LOADER = ['num_workers=0', 'persistent_workers=False']
# Mask R-CNN: 4 images, batch 2 -> 2 iterations an epoch, 3 epochs; LSJ at 64 px, heads as in test_det_train
DET = ['train_dataloader.dataset.pipeline.2.scale=(64,64)', 'train_dataloader.dataset.pipeline.3.crop_size=(64,64)',
       'train_cfg.max_epochs=3', 'param_scheduler.0.end=3', 'model.backbone.drop_path_rate=0.1']
# UPerNet: batch 2, 6 iterations, a checkpoint every 2; crops of 64 px, 16-channel heads, 150 classes kept
SEG = ['model.decode_head.channels=16', 'model.auxiliary_head.channels=16', 'model.data_preprocessor.size=(64,64)',
       'train_dataloader.dataset.pipeline.2.scale=(256,64)', 'train_dataloader.dataset.pipeline.3.crop_size=(64,64)',
       'train_dataloader.batch_size=2', 'train_cfg.max_iters=6', 'default_hooks.checkpoint.interval=2',
       'param_scheduler.0.end=2', 'param_scheduler.1.begin=2', 'param_scheduler.1.end=6',
       'val_cfg=None', 'val_dataloader=None', 'val_evaluator=None'] + [f'train_dataloader.{o}' for o in LOADER]
COMMON = ['model.backbone.init_cfg=None', 'default_hooks.logger.interval=1']


def setup(tmp: Path, runs, stage: str, hooks: str = WITH_HOOK) -> tuple[Path, list]:
    """Toy data and a leaf config over the stage's atto config in `tmp` (a fault_dir); returns (config, options)."""
    root = runs.ROOT
    config = tmp / f'{stage}_{"hook" if hooks == WITH_HOOK else "nohook"}.py'
    if stage == 'det':
        if not (tmp / 'coco').exists():
            coco_instances(tmp / 'coco', train_images=4, val_images=1, size=(96, 64), classes=runs.COCO_CLASSES)
        config.write_text(LEAF.format(base=root / 'det_configs' / 'mask_rcnn_cnx2_a.py', hooks=hooks))
        # a fixed seed, so the uninterrupted run can run meanwhile; one worker process, restarted every epoch and
        # seeded by epoch_worker_init_fn from the main RNG (the config's persistent_workers=False)
        return config, runs.det_toy_options(tmp / 'coco', val=False) + DET + COMMON + [
            'randomness.seed=0', 'train_dataloader.num_workers=1']
    if not (tmp / 'ade').exists():
        ade20k(tmp / 'ade', train_images=4, val_images=1, size=(96, 64))
    config.write_text(LEAF.format(base=root / 'seg_configs' / 'upernet_cnx2_a.py', hooks=hooks))
    return config, [f'data_root={tmp / "ade"}'] + SEG + COMMON  # no seed, as the config: each run draws one


def kill_and_resume(tmp: Path, runs, stage: str, kill_at: int, hooks: str = WITH_HOOK, full: str | None = 'meanwhile'
                    ) -> str:
    """The killed run in a subprocess, then `--resume` here; returns the resumed run's log. The uninterrupted run
    (full='meanwhile': while the killed one runs, same options; 'after': then, with the killed run's seed)."""
    config, options = setup(tmp, runs, stage, hooks)
    work = tmp / f'cut_{config.stem}'
    cut = runs.start(tmp, config, work, options, KILL_AT_ITER=kill_at)
    if full == 'meanwhile':
        runs.train_here(config, tmp / 'full', options, f'{stage}_full')
    log_cut, rc_cut = runs.finish(cut)
    assert rc_cut == -signal.SIGKILL and f'FAULT: SIGKILL rank 0 at iteration {kill_at}' in log_cut, log_cut[-3000:]
    if full == 'after':
        with mmengine_checkpoints():
            seed = torch.load(max(work.glob('*.pth'), key=lambda p: p.stat().st_mtime))['meta']['seed']
        runs.train_here(config, tmp / 'full', options + [f'randomness.seed={seed}'], f'{stage}_full')
    runs.train_here(config, work, options, f'{config.stem}_resumed', '--resume')
    return runs.last_log(work)


def differences(runs, a: Path, b: Path, iters: int) -> dict:
    """max |a - b| of the final checkpoints' weights, optimizer state and schedulers."""
    with mmengine_checkpoints():
        a, b = (torch.load(p, map_location='cpu') for p in (a, b))
    assert a['meta']['iter'] == b['meta']['iter'] == iters
    return {key: runs.max_difference(a[key], b[key]) for key in ('state_dict', 'optimizer', 'param_schedulers')}


def test_mask_rcnn_kill_in_epoch_2_and_resume_matches_uninterrupted_run(fault_dir, runs):
    """Killed at iteration 3 (the first of epoch 2, after epoch_1.pth); the control resumes without
    ResumeStateHook, so drop path and the LSJ resize / crop / flip draw from another RNG state, and differs."""
    tmp = fault_dir
    log = kill_and_resume(tmp, runs, 'det', kill_at=3)
    assert f'resume: last complete checkpoint is {tmp / "cut_det_hook" / "epoch_1.pth"}' in log
    assert 'resumed epoch: 1, iter: 2' in log and 'restored RNG states (rank 0 of 1)' in log
    diff = differences(runs, tmp / 'full' / 'epoch_3.pth', tmp / 'cut_det_hook' / 'epoch_3.pth', iters=6)
    assert diff == dict(state_dict=0, optimizer=0, param_schedulers=0), diff  # bitwise

    log = kill_and_resume(tmp, runs, 'det', kill_at=3, hooks=WITHOUT_HOOK, full=None)
    assert 'resumed epoch: 1, iter: 2' in log and 'restored RNG' not in log
    control = differences(runs, tmp / 'full' / 'epoch_3.pth', tmp / 'cut_det_nohook' / 'epoch_3.pth', iters=6)
    assert control['state_dict'] > 1e-6, control


def test_upernet_kill_at_iteration_5_and_resume_matches_uninterrupted_run(fault_dir, runs):
    """Killed at iteration 5, after iter_4.pth: mmengine replays 4 batches of the InfiniteSampler, then the RNG
    state of iteration 4 comes back (random resize, crop, flip, photometric distortion, drop path, dropout). No seed
    is set: the resumed process takes the killed run's from its checkpoint before the sampler is built."""
    tmp = fault_dir
    log = kill_and_resume(tmp, runs, 'seg', kill_at=5, full='after')
    assert f'resume: last complete checkpoint is {tmp / "cut_seg_hook" / "iter_4.pth"}' in log
    assert 'Advance dataloader 4 steps' in log and 'restored RNG states (rank 0 of 1)' in log
    diff = differences(runs, tmp / 'full' / 'iter_6.pth', tmp / 'cut_seg_hook' / 'iter_6.pth', iters=6)
    assert diff == dict(state_dict=0, optimizer=0, param_schedulers=0), diff  # bitwise
