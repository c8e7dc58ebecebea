"""Exact resume with 2 processes: FCMAE atto on 2 gloo processes (tools/dist_train.sh), SIGKILLed in epoch 2 and
resumed with `--resume`, ends with the weights, optimizer and schedulers of an uninterrupted 2-process run, bitwise
on CPU: every rank's RNG state (masks, augmentation) comes back. (A checkpoint inside an accumulation cycle stores
the ranks' mean pending gradient, not one per rank: equal up to rounding, measured max |Δw| 1.2e-7.)"""
import torch

from runtime import mmengine_checkpoints
from toydata import imagenet_folder

LEAF = '''_base_ = '{base}'
custom_imports = dict(imports=['backbone', 'pretrain', 'runtime', 'fault_helper'], allow_failed_imports=False)
custom_hooks = _base_.custom_hooks + [dict(type='KillAt')]
'''
# 12 images over 2 processes x batch 2: 3 iterations an epoch; the kill at iteration 5 resumes from epoch_1.pth
LOADER = ['batch_size=2', 'num_workers=0', 'persistent_workers=False', 'dataset.pipeline.size=64']
OPTIONS = ['train_cfg.max_epochs=3', 'optim_wrapper.accumulative_counts=1', 'model.decoder_embed_dim=64',
           'param_scheduler.0.end=1', 'param_scheduler.1.begin=1', 'default_hooks.logger.interval=1'] + [
    f'train_dataloader.{o}' for o in LOADER]


def test_two_process_kill_and_resume_matches_uninterrupted_run(fault_dir, runs):
    tmp = fault_dir
    imagenet_folder(tmp / 'data', classes=2, train_per_class=6, val_per_class=1, size=64)
    config = tmp / 'fcmae_dist.py'
    config.write_text(LEAF.format(base=runs.ROOT / 'pretrain/configs/fcmae_cnx2_atto.py'))
    options = ['--cfg-options', f'data_root={tmp / "data"}', *OPTIONS]
    log, rc, _ = runs.dist_train(tmp, config, tmp / 'full', *options)
    assert rc == 0, log[-4000:]
    log, rc, _ = runs.dist_train(tmp, config, tmp / 'cut', *options, KILL_AT_ITER=5, KILL_RANK=0)
    assert rc != 0 and 'FAULT: SIGKILL rank 0 at iteration 5' in log, log[-4000:]
    assert (tmp / 'cut' / 'epoch_1.pth').exists() and not (tmp / 'cut' / 'epoch_2.pth').exists()

    log, rc, _ = runs.dist_train(tmp, config, tmp / 'cut', '--resume', *options)
    assert rc == 0, log[-4000:]
    resumed = runs.last_log(tmp / 'cut')
    assert f'resume: last complete checkpoint is {tmp / "cut" / "epoch_1.pth"}' in resumed
    assert 'restored RNG states (rank 0 of 2)' in resumed
    with mmengine_checkpoints():
        a, b = (torch.load(tmp / run / 'epoch_3.pth', map_location='cpu') for run in ('full', 'cut'))
    assert a['meta']['iter'] == b['meta']['iter'] == 9 and b['resume_state']['world_size'] == 2
    for key in ('state_dict', 'optimizer', 'param_schedulers'):
        assert runs.max_difference(a[key], b[key]) == 0, key  # bitwise: same kernels, same order, one thread each
