"""Importing our packages changes nothing in mmengine or torch but registries (checked in a fresh interpreter), and
the one mmengine-internal access of exact resume (runtime.resume.wrap_train_iterator) still holds for the installed
mmengine, or fails with a message that names it."""
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from runtime import SafeLoadRunner
from runtime.resume import wrap_train_iterator

ROOT = Path(__file__).resolve().parents[1]
FRESH = '''
import timm  # noqa: F401  (third-party imports first: timm's import of torch.distributed.tensor adds torch's own
import torch  # DTensor safe globals)
from mmengine.fileio import io
from mmengine.fileio.backends import local_backend
from mmengine.hooks import checkpoint_hook
from mmengine.runner import checkpoint, runner


def state():
    return dict(put=local_backend.LocalBackend.put, hook_globals=dict(vars(checkpoint_hook)),
                find_in_runner=runner.find_latest_checkpoint, find_in_checkpoint=checkpoint.find_latest_checkpoint,
                prefixes=dict(io.prefix_to_backends), safe_globals=list(torch.serialization.get_safe_globals()))


before = state()
for name in ('backbone', 'pretrain', 'runtime'):
    __import__(name)
    after = state()
    for key, value in before.items():
        same = after[key].keys() == value.keys() and all(after[key][k] is v for k, v in value.items()) \\
            if isinstance(value, dict) else after[key] == value if isinstance(value, list) else after[key] is value
        assert same, f'importing {name} changed {key}'
    assert 'open' not in after['hook_globals'], f'importing {name} put an `open` into checkpoint_hook'
print('UNCHANGED')
'''


def test_imports_change_nothing_but_registries():
    proc = subprocess.run([sys.executable, '-c', FRESH], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and 'UNCHANGED' in proc.stdout, proc.stderr[-3000:]


class Counting:
    """Wraps the loop's data iterator and counts the batches drawn through it."""

    def __init__(self, iterator):
        self.iterator, self.drawn = iterator, 0

    def __iter__(self):
        return self

    def __next__(self):
        self.drawn += 1
        return next(self.iterator)


def test_iteration_loop_draws_through_the_wrapped_iterator(tmp_path, toy_model):
    """mmengine's IterBasedTrainLoop still keeps and uses `dataloader_iterator`: each batch comes through the wrap."""
    data = [dict(inputs=torch.ones(2))] * 4
    runner = SafeLoadRunner(
        model=toy_model(), work_dir=str(tmp_path), experiment_name='wrap', default_hooks=dict(checkpoint=None),
        train_dataloader=dict(dataset=data, sampler=dict(type='InfiniteSampler', shuffle=False), batch_size=2,
                              collate_fn=dict(type='default_collate'), num_workers=0),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)), train_cfg=dict(by_epoch=False, max_iters=3))
    wrapped = []
    wrap_train_iterator(runner.train_loop, lambda it: wrapped.append(Counting(it)) or wrapped[-1])
    runner.train()
    assert len(wrapped) == 1 and wrapped[0].drawn == 3


def test_a_renamed_iterator_fails_naming_it():
    class Renamed:  # what a future mmengine that renamed the attribute would look like
        iter = 2

    with pytest.raises(RuntimeError, match=r'Renamed has no `dataloader_iterator` \(mmengine 0\.10\.7 had one\)'):
        wrap_train_iterator(Renamed(), lambda it: it)
