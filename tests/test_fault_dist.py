"""Distributed runs on CPU: 2 gloo processes × batch 2 train fine-tuning to the weights of 1 process ×
batch 4 (float tolerance), and when one worker is SIGKILLed the other stops with an error naming it, within seconds."""
import datetime
import re
import time
from pathlib import Path

import torch

from runtime import mmengine_checkpoints
from toydata import imagenet_folder

LEAF = '''_base_ = '{base}'
custom_imports = dict(imports=['backbone', 'pretrain', 'runtime', 'fault_helper'], allow_failed_imports=False)
model = dict(backbone=dict(num_classes=2, drop_path_rate=0.))  # no randomness in the step: ranks see fixed inputs
train_dataloader = dict(batch_size={batch}, num_workers=0, persistent_workers=False, sampler=dict(shuffle=False),
                        dataset=dict(pipeline=dict(_delete_=True, type='eval', size=32)))
optim_wrapper = dict(accumulative_counts=1)
custom_hooks = [dict(type='EMAHook', momentum=0.1, interval=1, priority='ABOVE_NORMAL'), dict(type='ResumeStateHook'),
                dict(type='KillAt')]
train_cfg = dict(max_epochs={epochs}, val_interval=100)
val_cfg = None
val_dataloader = None
val_evaluator = None
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(save_best=None))
'''


def setup(tmp: Path, root: Path, batch: int, epochs: int) -> Path:
    """Toy ImageNet (once) and a leaf config over fine-tuning atto in `tmp` (a fault_dir)."""
    if not (tmp / 'data').exists():
        imagenet_folder(tmp / 'data', classes=2, train_per_class=4, val_per_class=1, size=32)
    config = tmp / f'dist_b{batch}_e{epochs}.py'
    config.write_text(LEAF.format(base=root / 'pretrain/configs/finetune_cnx2_atto.py', batch=batch, epochs=epochs))
    return config


def test_two_processes_match_one_with_the_same_global_batch(fault_dir, runs):
    tmp_path, data = fault_dir, f'data_root={fault_dir / "data"}'
    log, rc, _ = runs.dist_train(tmp_path, setup(tmp_path, runs.ROOT, batch=2, epochs=2), tmp_path / 'two',
                                 '--cfg-options', data)
    assert rc == 0, log[-4000:]
    assert 'Distributed launcher: pytorch' in log and 'GPU number: 2' in log
    runs.train_here(setup(tmp_path, runs.ROOT, batch=4, epochs=2), tmp_path / 'one', [data], 'one')
    with mmengine_checkpoints():
        two, one = (torch.load(tmp_path / run / 'epoch_2.pth', map_location='cpu') for run in ('two', 'one'))
    assert two['meta']['iter'] == one['meta']['iter'] == 4  # 8 images: 2 × 2 per step vs 4 per step
    assert two['resume_state']['world_size'] == len(two['resume_state']['rng']) == 2  # gathered from both ranks
    assert not torch.equal(*(r['torch'] for r in two['resume_state']['rng']))  # diff_rank_seed: own streams
    diffs = {key: runs.max_difference(two[key], one[key]) for key in ('state_dict', 'ema_state_dict', 'optimizer')}
    # all-reduce of two half-batch means vs one batch mean: float rounding, which AdamW's g / sqrt(v) can lift to
    # ~1e-5 on weights whose gradient is near zero (lr 8e-4, 4 steps)
    assert diffs['state_dict'] < 5e-5 and diffs['ema_state_dict'] < 5e-5, diffs
    print(f'max |two processes - one process|: {diffs}')


def test_dead_worker_stops_the_other_within_seconds(fault_dir, runs):
    """Rank 1 SIGKILLs itself after iteration 1; rank 0 would block in the next all-reduce. torchrun's agent sees
    the exit, SIGTERMs rank 0 and fails the job naming rank 1."""
    tmp_path = fault_dir
    log, rc, wall = runs.dist_train(tmp_path, setup(tmp_path, runs.ROOT, batch=2, epochs=1), tmp_path / 'work',
                                    '--cfg-options', f'data_root={tmp_path / "data"}', KILL_AT_ITER=1, KILL_RANK=1)
    ended = time.time()
    killed = re.search(r'FAULT: SIGKILL rank 1 at iteration 1 at ([\d.]+)', log)
    assert killed, log[-4000:]
    assert rc != 0 and 'Epoch(train) [1][2/2]' not in log  # nobody trained on alone
    assert re.search(r'rank\s*:\s*1 \(local_rank: 1\)\s+exitcode\s*:\s*-9', log), log[-4000:]  # named
    seen = re.search(r'(\d\d):(\d\d):(\d\d\.\d+) .*failed \(exitcode: -9\) local_rank: 1', log)  # agent's log
    kill = datetime.datetime.fromtimestamp(float(killed[1]))
    detected = (int(seen[1]) * 3600 + int(seen[2]) * 60 + float(seen[3])) - (
        kill.hour * 3600 + kill.minute * 60 + kill.second + kill.microsecond / 1e6)
    stopped = ended - float(killed[1])  # upper bound: includes this process noticing the exit
    assert 0 <= detected < 15 and stopped < 90, (detected, stopped)
    print(f'dead worker: detected {detected:.2f} s, job ended {stopped:.1f} s after the kill (run {wall:.0f} s)')
