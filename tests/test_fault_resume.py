"""Exact resume after SIGKILL: a run killed after a checkpoint and resumed with `--resume` ends with the
same weights, EMA and optimizer state as an uninterrupted run (bitwise on CPU); a kill in the middle of writing a
checkpoint leaves no cut file under a final name, and resume takes the previous complete one and says so."""
import os
import signal
import subprocess
import sys
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.dataset import worker_init_fn as mmengine_worker_init_fn
from mmengine.hooks import Hook
from mmengine.model import BaseModel

from runtime import SafeLoadRunner, atomic, mmengine_checkpoints, resume
from toydata import imagenet_folder

LEAF = '''_base_ = '{base}'
custom_imports = dict(imports=['backbone', 'pretrain', 'runtime', 'fault_helper'], allow_failed_imports=False)
custom_hooks = [h for h in _base_.custom_hooks if h['type'] not in ('OptimStepEMAHook', 'ResumeStateHook')] + [
    dict(type='ResumeStateHook'), dict(type='KillAt')] + {ema}
'''
EPOCHS, ACCUM = 3, 2  # 6 images, batch 2: 3 iterations an epoch, so epoch_1.pth falls mid-accumulation
LOADER = ['batch_size=2', 'num_workers=0', 'persistent_workers=False', 'dataset.pipeline.size=64']
STAGES = {
    'fcmae': ('pretrain/configs/fcmae_cnx2_atto.py', '[]', [
        'model.decoder_embed_dim=64', 'param_scheduler.0.end=1', 'param_scheduler.1.begin=1']),
    'finetune': ('pretrain/configs/finetune_cnx2_atto.py', f"[dict(type='EMAHook', momentum=0.1, interval={ACCUM}, "
                 "priority='ABOVE_NORMAL')]", ['model.backbone.num_classes=2', 'train_cfg.val_interval=1'] + [
        f'val_dataloader.{o}' for o in LOADER]),
}


def setup_stage(tmp: Path, stage: str, root: Path) -> tuple[Path, list]:
    """Toy ImageNet and a leaf config over the stage's atto config in `tmp` (a fault_dir); returns (config, options)."""
    base, ema, extra = STAGES[stage]
    if not (tmp / 'data').exists():
        imagenet_folder(tmp / 'data', classes=2, train_per_class=3, val_per_class=1, size=64)
    config = tmp / f'{stage}_fault.py'
    config.write_text(LEAF.format(base=root / base, ema=ema))
    options = [f'data_root={tmp / "data"}', f'train_cfg.max_epochs={EPOCHS}',
               f'optim_wrapper.accumulative_counts={ACCUM}', 'default_hooks.logger.interval=1'] + [
        f'train_dataloader.{o}' for o in LOADER] + extra
    return config, options


@pytest.mark.parametrize('stage', ['fcmae', 'finetune'])
def test_kill_and_resume_matches_uninterrupted_run(fault_dir, runs, stage):
    tmp_path = fault_dir
    config, options = setup_stage(tmp_path, stage, runs.ROOT)
    cut = runs.start(tmp_path, config, tmp_path / 'cut', options, KILL_AT_ITER=5)
    runs.train_here(config, tmp_path / 'full', options, f'{stage}_full')  # meanwhile, the uninterrupted run
    log_cut, rc_cut = runs.finish(cut)
    assert rc_cut == -signal.SIGKILL and 'FAULT: SIGKILL rank 0 at iteration 5' in log_cut, log_cut[-3000:]
    assert not (tmp_path / 'cut' / 'epoch_2.pth').exists()  # killed in epoch 2: epoch_1.pth (iteration 3) is the last

    runs.train_here(config, tmp_path / 'cut', options, f'{stage}_resumed', '--resume')
    log = runs.last_log(tmp_path / 'cut')
    assert f'resume: last complete checkpoint is {tmp_path / "cut" / "epoch_1.pth"}' in log
    assert 'restored RNG states and accumulated gradients (rank 0 of 1)' in log  # 3 % ACCUM: one micro-batch pending
    assert 'resumed epoch: 1, iter: 3' in log
    with mmengine_checkpoints():
        a, b = (torch.load(tmp_path / run / f'epoch_{EPOCHS}.pth', map_location='cpu') for run in ('full', 'cut'))
    assert a['meta']['iter'] == b['meta']['iter'] == 3 * EPOCHS
    for key in ('state_dict', 'optimizer', 'param_schedulers') + (('ema_state_dict',) if stage == 'finetune' else ()):
        assert runs.max_difference(a[key], b[key]) == 0, key  # bitwise: same kernels, same order, one thread
    assert b['resume_state']['world_size'] == 1


def test_kill_while_writing_checkpoint_keeps_previous(fault_dir, runs):
    """SIGKILL halfway through writing epoch_2.pth: only a hidden temporary file is cut; resume takes epoch_1.pth."""
    tmp_path = fault_dir
    config, options = setup_stage(tmp_path, 'fcmae', runs.ROOT)
    work = tmp_path / 'work'
    log, rc = runs.finish(runs.start(tmp_path, config, work, options, KILL_IN_WRITE=2))
    assert rc == -signal.SIGKILL, log[-3000:]
    names = sorted(p.name for p in work.iterdir() if p.is_file())
    cut = [n for n in names if n.startswith('.epoch_2.pth.tmp')]
    assert 'epoch_1.pth' in names and 'epoch_2.pth' not in names and len(cut) == 1, names
    assert not atomic.is_complete(str(work / cut[0])) and atomic.is_complete(str(work / 'epoch_1.pth'))
    assert (work / 'last_checkpoint').read_text() == str(work / 'epoch_1.pth')

    runs.train_here(config, work, options + ['train_cfg.max_epochs=2'], 'write_resumed', '--resume')
    log = runs.last_log(work)
    assert f'resume: last complete checkpoint is {work / "epoch_1.pth"}' in log and 'resumed epoch: 1, iter: 3' in log
    assert atomic.is_complete(str(work / 'epoch_2.pth'))


def test_without_atomic_writes_a_kill_cuts_the_final_file(fault_dir):
    """The control: the same kill inside mmengine's plain LocalBackend.put leaves a cut file under the final name."""
    tmp_path = fault_dir
    code = ('import write_fault; from mmengine.fileio.backends.local_backend import LocalBackend; '
            'LocalBackend().put(b"PK\\x03\\x04" + bytes(1 << 20), "epoch_1.pth")')  # a zip start, as torch.save
    env = dict(os.environ, PYTHONPATH=str(tmp_path), FAULT_KILL_IN_WRITE='1')
    proc = subprocess.run([sys.executable, '-c', code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    cut = tmp_path / 'epoch_1.pth'
    assert cut.stat().st_size == (4 + (1 << 20)) // 2 and not atomic.is_complete(str(cut))


class NoisyModel(BaseModel):
    """Dropout draws from torch's RNG in every step, as FCMAE's mask and drop path do."""

    def __init__(self):
        super().__init__()
        self.fc, self.drop = torch.nn.Linear(4, 2), torch.nn.Dropout(0.5)

    def forward(self, inputs, labels, mode='tensor'):
        out = self.fc(self.drop(inputs))
        return dict(loss=((out - labels) ** 2).mean()) if mode == 'loss' else out


class NoisyData(torch.utils.data.Dataset):
    """Random augmentation from the global numpy and torch RNGs, as timm's transforms with num_workers=0."""

    def __len__(self):
        return 4

    def __getitem__(self, i):
        return dict(inputs=torch.full((4,), float(i)) + torch.randn(4) + float(np.random.rand()),
                    labels=torch.ones(2) * (i % 2))


class Interrupt(Exception):
    pass


class StopAt(Hook):
    priority = 'LOWEST'

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if runner.iter + 1 == 4:
            raise Interrupt  # in iteration 4, after iter_3.pth


def iter_runner(work, hooks, resume=False):
    torch.manual_seed(0)  # the model's initial weights
    return SafeLoadRunner(
        model=NoisyModel(), work_dir=str(work), resume=resume, randomness=dict(seed=0),
        experiment_name=f'{work.name}{"-resume" if resume else ""}{len(hooks)}',
        train_dataloader=dict(dataset=NoisyData(), sampler=dict(type='InfiniteSampler', shuffle=True), batch_size=2,
                              collate_fn=dict(type='default_collate'), num_workers=0),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=0.05), accumulative_counts=2),
        train_cfg=dict(by_epoch=False, max_iters=6), custom_hooks=hooks,
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=3, by_epoch=False)))


@pytest.mark.parametrize('with_hook', [True, False])
def test_iter_based_resume_replays_data_then_restores_rng(tmp_path, with_hook):
    """IterBasedTrainLoop (segmentation) replays the first 3 batches on resume; the RNG is set after them, and the
    gradient of iteration 3 (accumulated, not yet applied) comes back. Without the hook, the weights differ."""
    hooks = lambda: [resume.ResumeStateHook()] if with_hook else []  # noqa: E731
    full = iter_runner(tmp_path / 'full', hooks())
    full.train()
    with pytest.raises(Interrupt):
        iter_runner(tmp_path / 'cut', hooks() + [StopAt()]).train()
    resumed = iter_runner(tmp_path / 'cut', hooks(), resume=True)
    resumed.train()
    diff = max(float((a - b).abs().max()) for a, b in zip(full.model.parameters(), resumed.model.parameters()))
    assert (diff == 0) if with_hook else (diff > 1e-4), diff


class Draws(torch.utils.data.Dataset):
    """Each item: a draw from the worker's numpy RNG (as random augmentation)."""

    def __len__(self):
        return 2

    def __getitem__(self, i):
        return float(np.random.rand())


def epoch_draws(init_fn, epochs: int = 2) -> list:
    loader = torch.utils.data.DataLoader(Draws(), batch_size=2, num_workers=1, worker_init_fn=init_fn,
                                         persistent_workers=False)
    return [next(iter(loader)).tolist() for _ in range(epochs)]


def test_epoch_worker_seeding_draws_anew_each_epoch_and_repeats_after_restore():
    """mmengine's worker seeding (seed, rank, worker id) repeats one sequence every epoch; epoch_worker_init_fn
    seeds from the main process's RNG (which ResumeStateHook restores): new draws each epoch, equal on a replay."""
    first, second = epoch_draws(partial(mmengine_worker_init_fn, num_workers=1, rank=0, seed=0))
    assert first == second
    state = resume.rng_state()
    first, second = epoch_draws(resume.epoch_worker_init_fn)
    assert first != second
    resume.set_rng_state(state)
    assert epoch_draws(resume.epoch_worker_init_fn) == [first, second]  # a resumed run restores this state
