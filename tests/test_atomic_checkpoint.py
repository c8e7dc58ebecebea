"""AtomicCheckpointHook on mmengine 0.10.7's CheckpointHook: every checkpoint file and every `last_checkpoint` pointer
reaches its final name by rename from a finished temporary file (the SIGKILL cases: test_fault_resume.py); resume
takes the last complete checkpoint."""
import os.path as osp

import torch

from runtime import SafeLoadRunner, atomic


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
    torch.save(dict(w=torch.ones(3)), good)
    cut.write_bytes(good.read_bytes()[:100])
    (tmp_path / 'last_checkpoint').write_text(str(cut))
    assert atomic.find_last_complete_checkpoint(str(tmp_path)) == str(good)
    (tmp_path / 'last_checkpoint').write_text('/elsewhere/old_work_dir/iter_2.pth')
    cut.unlink()
    assert atomic.find_last_complete_checkpoint(str(tmp_path)) == str(good)  # found by name in the work dir
    good.unlink()
    assert atomic.find_last_complete_checkpoint(str(tmp_path)) is None
