"""mmengine 0.10.7 resumes through torch.load's default weights_only=True: with the allow-list that runtime's
SafeLoadRunner applies while it loads (and only with it) an interrupted iteration-based run resumes to exactly the
weights of an uninterrupted one."""
import pickle

import pytest
import torch
import torch.nn as nn
from mmengine.hooks import Hook
from mmengine.model import BaseModel
from torch.utils.data import Dataset

from runtime import SafeLoadRunner, mmengine_checkpoints

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


def test_without_allow_list_resume_fails(tmp_path):
    """The control: mmengine's checkpoint really needs the allow-list (so the test above proves the fix), and it
    is allowed only inside the context, not process-wide."""
    make_runner(tmp_path / 'control', StopAt()).train()
    with pytest.raises(pickle.UnpicklingError, match='HistoryBuffer|numpy|getattr'):
        torch.load(tmp_path / 'control' / 'iter_2.pth')
    with mmengine_checkpoints():
        saved = torch.load(tmp_path / 'control' / 'iter_2.pth')  # the allow-list is back
    assert set(saved) >= {'state_dict', 'optimizer', 'message_hub', 'param_schedulers'}
