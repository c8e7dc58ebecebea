"""tools/dist_train.sh on CPU: two torchrun processes on gloo train Mask R-CNN + ConvNeXt V2-Atto for 2 iterations,
then `--resume` continues from the work dir's last checkpoint to iteration 4; tools/dist_test.sh on 2 processes then
gives the metrics of tools/test.py in one process."""
import json
import pickle
import os
import os.path as osp
import socket
import subprocess
import sys
import weakref
from types import SimpleNamespace

import pytest
import torch

from backbone.checkpoint import safe_load
from datachecks import check
from mmengine.model import MMDistributedDataParallel
from runtime import leave_process_group, load_cfg
from tools import test as test_tool
from tools import train as train_tool
from toydata import coco_instances, imagenet_folder

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


CONFIG = osp.join(ROOT, 'det_configs', 'mask_rcnn_cnx2_a.py')


def options(runs, data_root, epochs: int) -> list:
    return runs.det_toy_options(data_root, batch=1, val=False) + [f'train_cfg.max_epochs={epochs}',
                                                         'model.backbone.init_cfg=None', 'find_unused_parameters=True']


def dist_train(runs, work, data_root, epochs: int, *extra, tool='dist_train.sh', args=('2',)) -> str:
    """Run tools/dist_train.sh (or dist_test.sh) with 2 processes (batch 1 each) and return its combined output."""
    env = dict(os.environ, PYTHON=sys.executable, PORT=str(free_port()), OMP_NUM_THREADS='1')
    cmd = ['bash', osp.join(ROOT, 'tools', tool), CONFIG, *args, '--work-dir', str(work), *extra,
           '--cfg-options', *options(runs, data_root, epochs)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc.stdout + proc.stderr


def test_dist_train_gloo_then_resume(tmp_path, runs):
    coco_instances(tmp_path / 'coco', train_images=4, val_images=3, size=(96, 64))
    work = tmp_path / 'work'
    log = dist_train(runs, work, tmp_path / 'coco', 1)
    assert 'Distributed launcher: pytorch' in log and 'GPU number: 2' in log and "'backend': 'gloo'" in log
    meta = safe_load(work / 'epoch_1.pth')['meta']
    assert (meta['epoch'], meta['iter']) == (1, 2)  # 4 images over 2 processes, batch 1 each

    log = dist_train(runs, work, tmp_path / 'coco', 2, '--resume')
    assert 'resumed epoch: 1, iter: 2' in log
    assert 'Epoch(train) [2][2/2]' in log
    meta = safe_load(work / 'epoch_2.pth')['meta']
    assert (meta['epoch'], meta['iter']) == (2, 4)

    # the trained checkpoint on 2 test processes (3 images: one rank gets a padded duplicate, dropped when gathered)
    ckpt = str(work / 'epoch_2.pth')
    one = test_tool.main([CONFIG, ckpt, '--work-dir', str(tmp_path / 'test1'), '--out', str(tmp_path / 'one.pkl'),
                          '--cfg-options', *options(runs, tmp_path / 'coco', 2)])
    log = dist_train(runs, tmp_path / 'test2', tmp_path / 'coco', 2, '--out', str(tmp_path / 'two.pkl'),
                     tool='dist_test.sh', args=(ckpt, '2'))
    assert 'GPU number: 2' in log and 'tools/test.py: wrote' in log
    two = json.loads((tmp_path / 'test2' / 'test_results.json').read_text())
    assert two['metrics'] == one['metrics'] and len(one['metrics']) == 12  # bbox and segm: 6 AP figures each
    preds = [pickle.loads((tmp_path / f'{n}.pkl').read_bytes()) for n in ('one', 'two')]  # files this test wrote
    assert [p['img_id'] for p in preds[0]] == [p['img_id'] for p in preds[1]] and len(preds[0]) == 3
    for a, b in zip(*preds):
        assert len(a['pred_instances']['scores']) > 0
        for key in ('bboxes', 'scores', 'labels'):
            torch.testing.assert_close(a['pred_instances'][key], b['pred_instances'][key], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize('held_by', ['the returned runner', 'a discarded runner in a reference cycle'])
def test_leaving_the_group_frees_the_backend_while_the_interpreter_lives(tmp_path, held_by):
    """A DDP wrapper that outlives destroy_process_group keeps gloo's threads until interpreter finalization, where
    a rank aborted after its work was done (2 of 30 two-rank runs; tools/dist_test.sh in CI): the group must be
    gone when leave_process_group returns, whether train/test hand it their runner or seg_eval dropped its own."""
    torch.distributed.init_process_group('gloo', init_method=f'file://{tmp_path / "store"}', rank=0, world_size=1)
    group = weakref.ref(torch.distributed.group.WORLD)
    runner = SimpleNamespace(model=MMDistributedDataParallel(torch.nn.Linear(2, 2)))
    runner.self = runner  # mmengine's Runner is referenced from its loops and hooks
    try:
        if held_by == 'the returned runner':
            leave_process_group(runner)
            assert isinstance(runner.model, torch.nn.Linear)
        else:
            del runner
            leave_process_group()
        assert group() is None and not torch.distributed.is_initialized()
    finally:  # no group left behind for the tests after this one, whatever failed
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def test_preflight_runs_on_global_rank_zero_only(tmp_path, monkeypatch, capsys, runs):
    """Before the process group exists an srun task has SLURM_PROCID but no RANK: task 1 must not check (nor any
    task of another node, whose local rank is 0 as well); rank 0 checks with one thread per CPU it may use."""
    coco_instances(tmp_path / 'coco', train_images=2, val_images=1, size=(64, 48))
    options = train_tool.parse_args(['x', '--cfg-options', *runs.det_toy_options(tmp_path / 'coco')]).cfg_options
    cfg = load_cfg(CONFIG, options, str(tmp_path / 'work'), 'none')
    clean = {k: v for k, v in os.environ.items() if not k.startswith(('SLURM_', 'RANK', 'LOCAL_RANK'))}
    monkeypatch.setattr(os, 'sched_getaffinity', lambda pid: {0, 1, 2, 3})
    for env in (dict(SLURM_PROCID='1', SLURM_LOCALID='0'), dict(RANK='1', LOCAL_RANK='0')):
        monkeypatch.setattr(os, 'environ', dict(clean, **env))
        assert check(cfg) == {} and 'preflight' not in capsys.readouterr().err, env
    for env, threads in ((dict(SLURM_PROCID='0', SLURM_CPUS_PER_TASK='1'), 1), (dict(RANK='0'), 4)):
        monkeypatch.setattr(os, 'environ', dict(clean, **env))
        assert sorted(check(cfg)) == ['train', 'val']
        line = f'preflight: global rank 0 checks the train/val data ({threads} threads)'
        assert capsys.readouterr().err.count(line) == 1, env


FINETUNE = osp.join(ROOT, 'pretrain', 'configs', 'finetune_cnx2_atto.py')
TINY_FT = ['model.backbone.num_classes=2', 'train_cfg.max_epochs=1', 'optim_wrapper.accumulative_counts=1',
           'val_cfg=None', 'val_dataloader=None', 'val_evaluator=None', 'default_hooks.checkpoint.save_best=None'] + [
    f'train_dataloader.{o}' for o in ('batch_size=2', 'num_workers=0', 'persistent_workers=False', 'pin_memory=False',
                                      'dataset.pipeline.size=32')]


def test_the_built_optimizer_has_the_lr_of_the_run(tmp_path, runs):
    """Fine-tuning atto (blr 2e-4, recipe batch 1024) on 1 process × batch 2: --auto-scale-lr gives every parameter
    group blr × 2 / 256 × its layer-decay scale and the cosine the floor min_lr 1e-6; without it the recipe's
    2e-4 × 1024 / 256 = 8e-4 and a warning naming both batches."""
    imagenet_folder(tmp_path / 'data', classes=2, train_per_class=1, val_per_class=1, size=32)
    options = [f'data_root={tmp_path / "data"}', *TINY_FT]
    for name, extra, lr in (('scaled', ['--auto-scale-lr'], 2e-4 * 2 / 256), ('recipe', [], 8e-4)):
        runner = runs.train_here(FINETUNE, tmp_path / name, options, name, *extra)
        groups = runner.optim_wrapper.optimizer.param_groups
        assert max(g['initial_lr'] for g in groups) == pytest.approx(lr)  # the head: layer-decay scale 1
        assert all(g['initial_lr'] == pytest.approx(lr * g['lr_scale']) for g in groups)
        cosine = runner.param_schedulers[-1]
        assert type(cosine).__name__ == 'CosineAnnealingLR' and cosine.eta_min_ratio * lr == pytest.approx(1e-6)
        log = runs.last_log(tmp_path / name)
        head = 'lr: world size 1 × batch 2 × accumulation 1 = effective 2; '
        assert (head + 'lr = blr × 2 / 256 = 0.0002 × 2 / 256 = 1.563e-06 (--auto-scale-lr; recipe batch 1024)'
                if extra else head + 'but the recipe is for batch 1024 (auto_scale_lr.base_batch_size): lr stays '
                'blr × 1024 / 256 = 0.0002 × 1024 / 256 = 0.0008; --auto-scale-lr gives') in log
