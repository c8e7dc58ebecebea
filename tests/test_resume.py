"""mmengine 0.10.7 resumes through torch.load's default weights_only=True: with the allow-list that runtime's
SafeLoadRunner applies while it loads (and only with it) an interrupted iteration-based run resumes to exactly the
weights of an uninterrupted one; with 2 processes, ResumeStateHook's gathered gradients live only until the
checkpoint that needs them is written."""
import json
import os
import pickle
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn as nn
from mmengine.hooks import Hook
from mmengine.model import BaseModel
from torch.utils.data import Dataset

from runtime import SafeLoadRunner, mmengine_checkpoints
from runtime.resume import check_resume_path

MAX_ITERS = 4


class ToyModel(BaseModel):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, inputs, labels, mode='tensor'):
        out = self.fc(inputs)
        return dict(loss=((out - labels) ** 2).mean()) if mode == 'loss' else out


class ToyData(Dataset):
    def __init__(self):
        g = torch.Generator().manual_seed(0)
        self.x, self.y = torch.randn(8, 4, generator=g), torch.randn(8, 2, generator=g)

    def __len__(self):
        return 8

    def __getitem__(self, i):
        return dict(inputs=self.x[i], labels=self.y[i])


class Interrupt(Exception):
    pass


class StopAt(Hook):
    """Records where training starts, and simulates a crash after iteration `stop` (its checkpoint saved)."""
    priority = 'LOWEST'

    def __init__(self, stop=None):
        self.stop, self.started_at = stop, None

    def before_train(self, runner):
        self.started_at = runner.iter

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if runner.iter + 1 == self.stop:
            raise Interrupt


def make_runner(work_dir, hook, resume=False):
    torch.manual_seed(0)
    name = f'{work_dir.name}-resume' if resume else work_dir.name  # one logger per runner, even within a second
    return SafeLoadRunner(
        model=ToyModel(), work_dir=str(work_dir), resume=resume, randomness=dict(seed=0), experiment_name=name,
        train_dataloader=dict(dataset=ToyData(), sampler=dict(type='DefaultSampler', shuffle=False), batch_size=2,
                              collate_fn=dict(type='default_collate'), num_workers=0),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=0.05)),
        param_scheduler=dict(type='CosineAnnealingLR', T_max=MAX_ITERS, by_epoch=False),
        train_cfg=dict(by_epoch=False, max_iters=MAX_ITERS),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=2, by_epoch=False),
                           logger=dict(type='LoggerHook', interval=1)),
        custom_hooks=[hook])


def test_resume_matches_uninterrupted_run(tmp_path):
    full = make_runner(tmp_path / 'full', StopAt())
    full.train()
    assert (tmp_path / 'full' / 'iter_2.pth').exists() and full.iter == MAX_ITERS

    with pytest.raises(Interrupt):
        make_runner(tmp_path / 'cut', StopAt(stop=3)).train()  # crashes in iteration 3, after iter_2.pth
    hook = StopAt()
    resumed = make_runner(tmp_path / 'cut', hook, resume=True)
    resumed.train()
    assert hook.started_at == 2 and resumed.iter == MAX_ITERS
    assert resumed.optim_wrapper.optimizer.state_dict()['state'][0]['step'].item() == MAX_ITERS
    assert len(resumed.message_hub.get_scalar('train/loss').data[0]) == MAX_ITERS  # history restored + 2 new
    for a, b in zip(full.model.parameters(), resumed.model.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-7)
    torch.testing.assert_close(resumed.optim_wrapper.get_lr()['lr'][0], full.optim_wrapper.get_lr()['lr'][0])


def test_explicit_resume_of_a_partial_checkpoint_is_refused(tmp_path):
    """`--resume PATH` of a best_*.pth (mmengine's save_best writes it without optimizer and scheduler state, which
    Runner.resume would skip: AdamW and the schedule restarting) or of a file without `meta`: an error naming the
    file, what it lacks and how to start from its weights, raised by tools/train.py before any runner is built."""
    from tools import train as train_tool
    from toyruns import CONFIGS
    from toyruns.stages import ROOT
    runner = make_runner(tmp_path / 'run', StopAt())
    runner.train()
    complete = tmp_path / 'run' / f'iter_{MAX_ITERS}.pth'
    # what CheckpointHook._save_best_checkpoint calls
    runner.save_checkpoint(str(tmp_path), 'best_loss_iter_4.pth', save_optimizer=False, save_param_scheduler=False)
    best, no_meta = tmp_path / 'best_loss_iter_4.pth', tmp_path / 'no_meta.pth'
    with mmengine_checkpoints():
        torch.save({k: v for k, v in torch.load(complete).items() if k != 'meta'}, no_meta)
    check_resume_path(str(complete))  # all that a resume reads
    how = 'To start from its weights with a new optimizer and schedule: --cfg-options load_from='
    with pytest.raises(ValueError, match=f'^--resume {best}: no optimizer or param_schedulers saved: not resumable '
                                         rf'.*{how}{best} without --resume'):
        check_resume_path(str(best))
    with pytest.raises(ValueError, match=f'^--resume {best}: no optimizer saved'):
        check_resume_path(str(best), schedulers=False)  # a config without schedulers: only the optimizer lacks
    with pytest.raises(ValueError, match=f'^--resume {no_meta}: no meta saved'):
        check_resume_path(str(no_meta))
    with pytest.raises(FileNotFoundError, match=f'--resume {tmp_path}/gone.pth: no such file'):
        check_resume_path(str(tmp_path / 'gone.pth'))
    with pytest.raises(ValueError, match=f'^--resume {best}: no optimizer or param_schedulers saved'):
        train_tool.main([str(ROOT / CONFIGS['fcmae']), '--work-dir', str(tmp_path / 'fcmae'), '--resume', str(best),
                         '--no-preflight'])


def test_without_allow_list_resume_fails(tmp_path):
    """The control: mmengine's checkpoint really needs the allow-list (so the test above proves the fix), and it
    is allowed only inside the context, not process-wide."""
    make_runner(tmp_path / 'control', StopAt()).train()
    with pytest.raises(pickle.UnpicklingError, match='HistoryBuffer|numpy|getattr'):
        torch.load(tmp_path / 'control' / 'iter_2.pth')
    with mmengine_checkpoints():
        saved = torch.load(tmp_path / 'control' / 'iter_2.pth')  # the allow-list is back
    assert set(saved) >= {'state_dict', 'optimizer', 'message_hub', 'param_schedulers'}


TWO_RANKS = '''"""2 gloo processes, 3 iterations an epoch, 2 iterations per optimizer step: epoch 1 ends inside an
accumulation cycle. Records, each time an iteration starts, whether ResumeStateHook still holds a gathered gradient
copy, and (rank 0) the ranks' mean pending gradient at the end of epoch 1."""
import json
import os
import sys

import torch
import torch.distributed as dist
import torch.nn as nn
from mmengine.hooks import Hook
from mmengine.model import BaseModel

from runtime import SafeLoadRunner, atomic
from runtime.launch import leave_process_group


class Toy(BaseModel):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2, 1)

    def forward(self, inputs, mode='tensor'):
        return dict(loss=self.fc(inputs).pow(2).mean()) if mode == 'loss' else self.fc(inputs)


class Probe(Hook):
    priority = 'LOWEST'

    def __init__(self):
        self.holding, self.pending = [], None

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        hook = next(h for h in runner.hooks if type(h).__name__ == 'ResumeStateHook')
        self.holding.append(bool(hook.captured and hook.captured['grads']))

    def after_train_epoch(self, runner):
        if runner.epoch == 0:
            grads = {n: p.grad.clone() for n, p in runner.model.named_parameters()}  # the DDP names
            for g in grads.values():
                dist.all_reduce(g)
                g /= 2
            self.pending = {n: g.tolist() for n, g in grads.items()}


dist.init_process_group('gloo')
rank, work = dist.get_rank(), sys.argv[1]
published, publish = [], atomic.publish
atomic.publish = lambda tmp, path: published.append(os.path.basename(path)) or publish(tmp, path)
torch.manual_seed(0)
probe = Probe()
runner = SafeLoadRunner(
    model=Toy(), work_dir=work, launcher='pytorch', experiment_name='two_ranks', randomness=dict(seed=0),
    cfg=dict(model_wrapper_cfg=dict(type='MMDistributedDataParallel', device_ids=None)),  # DDP on the CPU
    train_dataloader=dict(dataset=[dict(inputs=torch.full((2,), float(i))) for i in range(12)], batch_size=2,
                          num_workers=0, sampler=dict(type='DefaultSampler', shuffle=False),
                          collate_fn=dict(type='default_collate')),
    optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01), accumulative_counts=2),
    train_cfg=dict(by_epoch=True, max_epochs=2),
    default_hooks=dict(checkpoint=dict(type='AtomicCheckpointHook', interval=1)),
    custom_hooks=[dict(type='ResumeStateHook'), probe])
runner.train()
with open(os.path.join(work, f'rank{rank}.json'), 'w') as f:
    json.dump(dict(holding=probe.holding, pending=probe.pending, published=published), f)
leave_process_group(runner)  # drops the DDP wrapper too: one holding the group aborted a rank at exit (gloo's threads)
'''


def test_gathered_gradients_are_released_after_the_save(tmp_path):
    """With 2 processes the pending gradients of an epoch that ends inside an accumulation cycle are gathered for
    epoch_1.pth (their mean over the ranks) and released once it is written: no iteration of epoch 2 runs with the
    copy, epoch_2.pth (at an optimizer step) holds no gradients, and only rank 0 publishes files."""
    (tmp_path / 'two_ranks.py').write_text(TWO_RANKS)
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=str(root))
    proc = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2',
                           f'--master_port={port}', str(tmp_path / 'two_ranks.py'), str(tmp_path / 'work')],
                          cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    ranks = [json.loads((tmp_path / 'work' / f'rank{r}.json').read_text()) for r in (0, 1)]
    for r in ranks:
        assert r['holding'] == [False] * 6  # iterations 1-6: no gathered gradient copy left from epoch 1
    assert ranks[0]['published'] == ['epoch_1.pth', 'last_checkpoint', 'epoch_2.pth', 'last_checkpoint']
    assert ranks[1]['published'] == []
    with mmengine_checkpoints():
        first, second = (torch.load(tmp_path / 'work' / f'epoch_{e}.pth') for e in (1, 2))
    grads = first['resume_state']['grads']
    assert grads and {n: g.tolist() for n, g in grads.items()} == ranks[0]['pending']
    assert second['resume_state']['grads'] is None and second['resume_state']['world_size'] == 2
