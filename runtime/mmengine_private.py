"""Every use the suite makes of mmengine internals (private names, undocumented behaviour, a copied method), each
read from mmengine 0.10.7 in the file named, in this one module; `problems()` says which of them no longer hold for
the installed mmengine (tests/test_mmengine_private.py), so a new mmengine is re-read here and nowhere else."""
import hashlib
import inspect
import re
import textwrap

import mmengine
import torch
from mmengine.hooks import CheckpointHook, EMAHook
from mmengine.logging import HistoryBuffer
from mmengine.optim import AmpOptimWrapper, OptimWrapper
from mmengine.runner import ValLoop
from mmengine.runner.loops import IterBasedTrainLoop, _parse_losses

READ_FROM = '0.10.7'
POINTER = 'last_checkpoint'


# ------------------------------------------------------------- mmengine/hooks/checkpoint_hook.py: the pointer file
class StagedWorkDir:
    """The runner as CheckpointHook sees it while saving, with `work_dir` pointing at a staging folder. Read from
    CheckpointHook._save_checkpoint_with_step: on the main process it writes `last_checkpoint` with a plain
    open(osp.join(runner.work_dir, 'last_checkpoint'), 'w'), which then lands in the staging folder."""

    def __init__(self, runner, work_dir: str):
        self._runner, self.work_dir = runner, work_dir

    def __getattr__(self, name):
        return getattr(self._runner, name)


def _check_pointer() -> str:
    source = inspect.getsource(CheckpointHook._save_checkpoint_with_step)
    if f"osp.join(runner.work_dir, '{POINTER}')" not in source or "open(save_file, 'w')" not in source:
        return 'no longer writes the pointer with open(osp.join(runner.work_dir, ...)): AtomicCheckpointHook ' \
               'would not publish it atomically'
    return ''


# ------------------------------------------------------ mmengine/runner/loops.py: IterBasedTrainLoop's data iterator
def wrap_train_iterator(loop, wrap):
    """Replace the data iterator of an IterBasedTrainLoop by `wrap(iterator)`. Read from IterBasedTrainLoop: the loop
    keeps its iterator in `dataloader_iterator` and, after before_train, advances it `iter` times on resume before
    drawing the next batch."""
    if not hasattr(loop, 'dataloader_iterator'):
        raise RuntimeError(f'runtime.resume: {type(loop).__name__} has no `dataloader_iterator` (mmengine 0.10.7 '
                           'had one): exact resume of iteration-based runs must be re-read for this mmengine')
    loop.dataloader_iterator = wrap(loop.dataloader_iterator)


def _check_iterator() -> str:
    init, run = inspect.getsource(IterBasedTrainLoop.__init__), inspect.getsource(IterBasedTrainLoop.run)
    if 'self.dataloader_iterator =' not in init or 'next(self.dataloader_iterator)' not in run:
        return 'no longer draws its batches from `dataloader_iterator`: exact resume of iteration-based runs ' \
               'would not restore the RNG at the resumed batch'
    return ''


# ------------------------------------------------------ mmengine/optim/optimizer/optimizer_wrapper.py: accumulation
def accumulative_counts(optim_wrapper) -> int:
    """Iterations per optimizer step of an OptimWrapper (its config's value in a test-only run, where it is not
    built). OptimWrapper keeps it only in the private `_accumulative_counts`."""
    if isinstance(optim_wrapper, dict) or optim_wrapper is None:
        return int((optim_wrapper or {}).get('accumulative_counts', 1))
    counts = getattr(optim_wrapper, '_accumulative_counts', None)
    if not isinstance(counts, int) or counts < 1:
        raise AttributeError(f'{type(optim_wrapper).__name__} has no int `_accumulative_counts` (read from mmengine '
                             '0.10.7); cannot derive the EMA interval; set EMAHook interval explicitly')
    return counts


def _check_counts() -> str:
    wrapper = OptimWrapper(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1), accumulative_counts=3)
    if getattr(wrapper, '_accumulative_counts', None) != 3:
        return 'keeps accumulative_counts elsewhere than `_accumulative_counts`: OptimStepEMAHook cannot read it'
    return ''


# ------------------------------------ mmengine/optim/optimizer/amp_optimizer_wrapper.py: AmpOptimWrapper's own state
AMP_STATE = ('_scale_update_param', 'loss_scaler', 'cast_dtype')  # set by AmpOptimWrapper.__init__, in order


def set_amp_state(wrapper: AmpOptimWrapper, loss_scaler, cast_dtype, static_scale: float | None) -> None:
    """Give an AmpOptimWrapper whose __init__ did not run (it asserts an accelerator) the state its backward, step,
    state_dict and load_state_dict read. Read from AmpOptimWrapper: __init__ sets `loss_scaler`, `cast_dtype` and the
    private `_scale_update_param` (a static scale, None when dynamic), which step passes to loss_scaler.update."""
    wrapper._scale_update_param, wrapper.loss_scaler, wrapper.cast_dtype = static_scale, loss_scaler, cast_dtype


def _check_amp_state() -> str:
    assigned = tuple(dict.fromkeys(re.findall(r'self\.(\w+) =', inspect.getsource(AmpOptimWrapper.__init__))))
    if assigned != AMP_STATE:
        return f'sets {assigned} in __init__, not {AMP_STATE}: DeviceAmpOptimWrapper on a CPU (set_amp_state) ' \
               'would miss state its methods read'
    if 'self.loss_scaler.update(self._scale_update_param)' not in inspect.getsource(AmpOptimWrapper.step):
        return 'no longer updates the scale with `_scale_update_param` in step: a static loss scale set by ' \
               'set_amp_state would not hold'
    return ''


# ---------------------------------------------------------------------- mmengine/hooks/ema_hook.py: the EMA config
def default_ema_interval(hook: EMAHook, interval: int) -> None:
    """Give an EMAHook's averaged model `interval` unless its config names one. Read from EMAHook: __init__ keeps
    the averaged model's arguments in `ema_cfg`, which before_run builds it from."""
    hook.ema_cfg.setdefault('interval', interval)


def _check_ema_cfg() -> str:
    if not isinstance(getattr(EMAHook(momentum=0.5), 'ema_cfg', None), dict) or \
            'self.ema_cfg' not in inspect.getsource(EMAHook.before_run):
        return 'no longer builds the averaged model from the dict `ema_cfg` in before_run: OptimStepEMAHook ' \
               'cannot set its interval'
    return ''


# ------------------------------------------------------------ mmengine/runner/loops.py: ValLoop.run, _parse_losses
# sha256 of the dedented source of ValLoop.run in 0.10.7, the method `evaluate_val_loop` copies a part of
VAL_LOOP_RUN_SHA256 = '8510d086ccd0b56ad36175b9d0983cb40615344681db13f68fd187c4f1ffe8f0'


def evaluate_val_loop(loop) -> dict:
    """One pass of a ValLoop over its data with the weights in place; metrics and val losses as ValLoop.run computes
    them between its before_val_epoch and after_val_epoch hooks (copied from it, with its private `_parse_losses`)."""
    loop.val_loss.clear()
    for idx, data_batch in enumerate(loop.dataloader):
        loop.run_iter(idx, data_batch)
    metrics = loop.evaluator.evaluate(len(loop.dataloader.dataset))
    if loop.val_loss:
        metrics.update(_parse_losses(loop.val_loss, 'val'))
    return metrics


def _check_val_loop() -> str:
    digest = hashlib.sha256(textwrap.dedent(inspect.getsource(ValLoop.run)).encode()).hexdigest()
    if digest != VAL_LOOP_RUN_SHA256:
        return 'changed: RawAndEMAValLoop copies its evaluation part (evaluate_val_loop); re-read and re-copy it'
    return ''


def _check_parse_losses() -> str:
    try:
        found = _parse_losses({'loss_a': HistoryBuffer([1., 3.], [1, 1]), 'acc': HistoryBuffer([5.], [1])}, 'val')
    except Exception as e:  # noqa: BLE001  (any failure means the private function changed)
        return f'no longer takes (losses, stage): {type(e).__name__}: {e}'
    if found != {'loss_a': 2., 'acc': 5., 'val_loss': 2.}:
        return f'returns {found} for one loss and one other value; expected their means and val_loss'
    return ''


ACCESSES = {  # what is used -> (file read in mmengine 0.10.7, the check against the installed mmengine)
    'CheckpointHook._save_checkpoint_with_step': ('mmengine/hooks/checkpoint_hook.py', _check_pointer),
    'IterBasedTrainLoop.dataloader_iterator': ('mmengine/runner/loops.py', _check_iterator),
    'OptimWrapper._accumulative_counts': ('mmengine/optim/optimizer/optimizer_wrapper.py', _check_counts),
    'AmpOptimWrapper._scale_update_param': ('mmengine/optim/optimizer/amp_optimizer_wrapper.py', _check_amp_state),
    'EMAHook.ema_cfg': ('mmengine/hooks/ema_hook.py', _check_ema_cfg),
    'ValLoop.run': ('mmengine/runner/loops.py', _check_val_loop),
    '_parse_losses': ('mmengine/runner/loops.py', _check_parse_losses),
}


def problems() -> list[str]:
    """One line for each access above that no longer holds for the installed mmengine (empty: all hold)."""
    found = []
    for name, (where, check) in ACCESSES.items():
        why = check()
        if why:
            found.append(f'mmengine {name} ({where}, read from {READ_FROM}) {why}')
    return found


def problems_on_another_version() -> list[str]:
    """problems() where the installed mmengine is not the one these accesses were read from; else none (the test
    suite checks them on that one)."""
    return problems() if mmengine.__version__ != READ_FROM else []
