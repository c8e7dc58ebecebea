"""Every mmengine internal the suite uses is reached through runtime.mmengine_private, and each still holds for the
installed mmengine; one that a new mmengine changes is named (what, which file, the version it was read from)."""
import re
from pathlib import Path

import pytest
from mmengine.hooks import CheckpointHook, EMAHook
from mmengine.optim import AmpOptimWrapper, OptimWrapper
from mmengine.runner import ValLoop, loops
from mmengine.runner.loops import IterBasedTrainLoop

from runtime import SafeLoadRunner, mmengine_private

ROOT = Path(__file__).resolve().parents[1]


def test_every_access_holds_for_the_installed_mmengine():
    assert mmengine_private.problems() == []


def renamed_pointer(self, runner, step, meta):
    with open(runner.work_dir + '/pointer', 'w') as f:  # a new mmengine writing the pointer under another name
        f.write(step)


def copied_run(self) -> dict:
    self.runner.call_hook('before_val')  # a new mmengine's ValLoop.run that also does something else
    return {}


def changed_counts(self, optimizer, accumulative_counts=1, clip_grad=None):
    self.optimizer, self.accumulation = optimizer, accumulative_counts


def changed_amp_init(self, loss_scale='dynamic', dtype=None, **kwargs):
    self.loss_scaler, self.cast_dtype, self.static_scale = loss_scale, dtype, None  # the static scale renamed


def changed_ema_init(self, ema_type='ExponentialMovingAverage', **kwargs):
    self.averaged = dict(type=ema_type, **kwargs)


@pytest.mark.parametrize('owner, name, replacement, access', [
    (CheckpointHook, '_save_checkpoint_with_step', renamed_pointer, 'CheckpointHook._save_checkpoint_with_step'),
    (IterBasedTrainLoop, 'run', copied_run, 'IterBasedTrainLoop.dataloader_iterator'),
    (OptimWrapper, '__init__', changed_counts, 'OptimWrapper._accumulative_counts'),
    (AmpOptimWrapper, '__init__', changed_amp_init, 'AmpOptimWrapper._scale_update_param'),
    (EMAHook, '__init__', changed_ema_init, 'EMAHook.ema_cfg'),
    (ValLoop, 'run', copied_run, 'ValLoop.run'),
    (loops, '_parse_losses', lambda losses: {}, '_parse_losses')])
def test_a_changed_mmengine_is_named(monkeypatch, owner, name, replacement, access):
    monkeypatch.setattr(owner, name, replacement)  # stands for the same name in a newer mmengine
    if owner is loops:
        monkeypatch.setattr(mmengine_private, '_parse_losses', replacement)
    found = mmengine_private.problems()
    where = mmengine_private.ACCESSES[access][0]
    assert len(found) == 1 and found[0].startswith(f'mmengine {access} ({where}, read from 0.10.7) '), found


def test_the_runner_logs_a_changed_access_on_another_mmengine(tmp_path, monkeypatch, toy_model):
    monkeypatch.setattr(mmengine_private, 'READ_FROM', '0.0.1')  # as if the installed mmengine were a newer one
    monkeypatch.setattr(ValLoop, 'run', copied_run)
    runner = SafeLoadRunner(model=toy_model(), work_dir=str(tmp_path), experiment_name='private')
    log = next(tmp_path.glob('*/*.log')).read_text()
    assert 'mmengine ValLoop.run (mmengine/runner/loops.py, read from 0.0.1) changed' in log and runner


def test_no_other_module_reaches_into_mmengine():
    """The mmengine internals used appear in runtime/mmengine_private.py only (tests aside)."""
    pattern = re.compile(r'_accumulative_counts|dataloader_iterator|_parse_losses|_save_checkpoint_with_step|ema_cfg|'
                         r'_scale_update_param')
    folders = [d for d in ROOT.iterdir() if d.is_dir() and not d.name.startswith('.') and d.name != 'tests']
    ours = [p for d in folders for p in d.rglob('*.py')]
    found = sorted(str(p.relative_to(ROOT)) for p in ours if pattern.search(p.read_text(errors='replace')))
    assert found == ['runtime/mmengine_private.py']
