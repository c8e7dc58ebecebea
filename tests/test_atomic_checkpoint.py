"""AtomicCheckpointHook on mmengine 0.10.7's CheckpointHook: every checkpoint file and every `last_checkpoint` pointer
reaches its final name by rename from a finished temporary file, renamed by global rank 0 alone (the SIGKILL cases:
test_fault_resume.py); resume takes the last complete checkpoint that holds optimizer and message hub, never a
weights-only best_*.pth."""
import os.path as osp
from types import SimpleNamespace

import pytest
import torch
from mmengine.evaluator import BaseMetric

from runtime import SafeLoadRunner, atomic, mmengine_checkpoints

RESUMABLE = dict(state_dict={'w': torch.ones(3)}, optimizer={}, message_hub={})  # the keys resume reads


def test_checkpoints_and_pointer_are_published_by_rename(tmp_path, monkeypatch, toy_model):
    published = []
    publish = atomic.publish
    monkeypatch.setattr(atomic, 'publish', lambda tmp, path: published.append((tmp, path)) or publish(tmp, path))
    runner = SafeLoadRunner(
        model=toy_model(), work_dir=str(tmp_path), experiment_name='atomic',
        default_hooks=dict(checkpoint=dict(type='AtomicCheckpointHook', interval=2, by_epoch=False)),
        train_dataloader=dict(dataset=[dict(inputs=torch.ones(2))] * 4, batch_size=2, num_workers=0,
                              sampler=dict(type='InfiniteSampler', shuffle=False),
                              collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)), train_cfg=dict(by_epoch=False, max_iters=4))
    runner.train()
    work, staged = str(tmp_path), osp.join(str(tmp_path), atomic.STAGING, atomic.POINTER)
    expected = []
    for step in (2, 4):
        ckpt = osp.join(work, f'iter_{step}.pth')
        expected += [(atomic._tmp_name(ckpt), ckpt), (staged, osp.join(work, atomic.POINTER))]
    assert published == expected  # each .pth, then the pointer mmengine wrote into the staging folder
    assert open(osp.join(work, atomic.POINTER)).read() == osp.join(work, 'iter_4.pth')
    assert not osp.exists(staged) and atomic.is_complete(osp.join(work, 'iter_4.pth'))


def test_resume_skips_cut_and_missing_files(tmp_path):
    """A pointer to a cut file (e.g. written by plain mmengine) or a moved work dir still resumes a complete one."""
    good, cut = tmp_path / 'iter_2.pth', tmp_path / 'iter_4.pth'
    torch.save(RESUMABLE, good)
    cut.write_bytes(good.read_bytes()[:100])
    (tmp_path / 'last_checkpoint').write_text(str(cut))
    assert atomic.find_last_complete_checkpoint(str(tmp_path)) == str(good)
    (tmp_path / 'last_checkpoint').write_text('/elsewhere/old_work_dir/iter_2.pth')
    cut.unlink()
    assert atomic.find_last_complete_checkpoint(str(tmp_path)) == str(good)  # found by name in the work dir
    good.unlink()
    assert atomic.find_last_complete_checkpoint(str(tmp_path)) is None


class Rising(BaseMetric):
    """A score that rises at every validation, so CheckpointHook writes a new best file each epoch."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def process(self, data_batch, data_samples):
        self.results.append(0)

    def compute_metrics(self, results):
        self.calls += 1
        return dict(score=float(self.calls))


def test_resume_passes_over_best_checkpoints(tmp_path, toy_model):
    """mmengine writes best_*.pth after the epoch file and without optimizer state: when the epoch file it names is
    cut, resume takes the older epoch file, not the newer best file (AdamW and the schedule would restart)."""
    data = dict(dataset=[dict(inputs=torch.ones(2))] * 2, batch_size=2, num_workers=0,
                sampler=dict(type='DefaultSampler', shuffle=False), collate_fn=dict(type='default_collate'))
    runner = SafeLoadRunner(
        model=toy_model(), work_dir=str(tmp_path), experiment_name='best', train_dataloader=data,
        val_dataloader=data, val_cfg=dict(), val_evaluator=[Rising()],
        default_hooks=dict(checkpoint=dict(type='AtomicCheckpointHook', interval=1, save_best='score', rule='greater')),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=0.1)), train_cfg=dict(by_epoch=True, max_epochs=2))
    runner.train()
    epoch1, epoch2, best = (tmp_path / f for f in ('epoch_1.pth', 'epoch_2.pth', 'best_score_epoch_2.pth'))
    assert osp.getmtime(best) > osp.getmtime(epoch1)
    with mmengine_checkpoints():
        assert 'optimizer' not in torch.load(best) and 'optimizer' in torch.load(epoch1)  # what mmengine writes
    epoch2.write_bytes(epoch2.read_bytes()[:200])  # cut, e.g. killed while a plain CheckpointHook rewrote it
    path, message, _ = atomic.choose_checkpoint(str(tmp_path))
    assert path == str(epoch1), message
    assert f'{best} (no optimizer saved: not resumable (best_* checkpoints are saved without optimizer' in message
    assert f'{epoch2} (incomplete)' in message
    epoch1.unlink()
    path, message, _ = atomic.choose_checkpoint(str(tmp_path))
    assert path is None and 'no resumable checkpoint' in message and str(best) in message


@pytest.mark.parametrize('rank, published', [(0, True), (1, False)])
def test_only_global_rank_0_publishes_the_pointer(tmp_path, rank, published):
    """On a shared file system every rank sees the pointer rank 0 staged; another rank renaming it too would race
    rank 0's rename. Here `save` stages it as rank 0's mmengine does, and the hook runs as `rank`."""
    hook = atomic.AtomicCheckpointHook(interval=1)
    staged = tmp_path / atomic.STAGING / atomic.POINTER
    staged.parent.mkdir()

    def save(staged_runner):  # CheckpointHook.after_train_epoch of rank 0, as seen through the staged work dir
        (tmp_path / 'epoch_1.pth').write_bytes(b'x')
        with open(osp.join(staged_runner.work_dir, atomic.POINTER), 'w') as f:
            f.write(str(tmp_path / 'epoch_1.pth'))
        hook.last_ckpt = str(tmp_path / 'epoch_1.pth')

    hook._publishing_pointer(SimpleNamespace(work_dir=str(tmp_path), rank=rank), save)
    assert (tmp_path / atomic.POINTER).exists() == published and staged.exists() != published
