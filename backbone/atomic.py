"""Crash-safe checkpoints and exact resume for mmengine 0.10.7 runs of every stage (issue 8).

`install()` (run at import, idempotent) patches three places: checkpoint files (`*.pth` through the local file backend)
and the `last_checkpoint` pointer are written to a temporary file in the same folder, fsynced and renamed, so a kill
never leaves a cut file under a final name; `--resume` (auto) takes the newest *complete* checkpoint and logs which.
`ResumeStateHook` stores what mmengine does not: torch/numpy/python RNG states (FCMAE masks, drop path, augmentation)
and gradients accumulated since the last optimizer step, and puts them back where the interrupted run was.
"""
import builtins
import logging
import os
import os.path as osp
import random
import zipfile

import numpy as np
import torch
import torch.distributed as dist
from mmengine.fileio.backends import local_backend
from mmengine.hooks import CheckpointHook, Hook
from mmengine.hooks import checkpoint_hook as _checkpoint_hook_module
from mmengine.logging import print_log
from mmengine.runner import checkpoint as _checkpoint_module
from mmengine.runner import runner as _runner_module
from mmengine.runner.loops import IterBasedTrainLoop

POINTER = 'last_checkpoint'


# --------------------------------------------------------------------------------------------- atomic writes
def _fsync_dir(folder: str):
    fd = os.open(folder or '.', os.O_RDONLY)
    try:
        os.fsync(fd)  # makes the rename itself durable
    finally:
        os.close(fd)


def _publish(tmp: str, path: str):
    """fsync `tmp`, then rename it over `path` (atomic on POSIX within one file system)."""
    with builtins.open(tmp, 'rb+') as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(osp.dirname(path))


def _tmp_name(path: str) -> str:
    return osp.join(osp.dirname(path), f'.{osp.basename(path)}.tmp{os.getpid()}')


def _atomic_put(original):
    def put(self, obj: bytes, filepath) -> None:
        path = os.fspath(filepath)
        if not path.endswith('.pth'):
            return original(self, obj, filepath)
        tmp = _tmp_name(path)
        original(self, obj, tmp)  # the backend's own write (makes the folder), to a name resume never reads
        _publish(tmp, path)
    put.atomic_original = original
    put.__doc__ = f'{original.__doc__ or ""}\n(backbone.atomic: .pth files go to a temporary name, fsync, rename.)'
    return put


class _AtomicTextFile:
    """`open(path, 'w')` stand-in whose text appears under `path` only once it is complete and synced."""

    def __init__(self, path: str, *args, **kwargs):
        self.path, self.tmp = path, _tmp_name(path)
        self.file = builtins.open(self.tmp, 'w', *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.file, name)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc):
        self.file.close()
        if exc_type is None:
            _publish(self.tmp, self.path)
        else:
            os.remove(self.tmp)


def _checkpoint_hook_open(file, mode='r', *args, **kwargs):
    """`open` as seen by mmengine.hooks.checkpoint_hook only: the `last_checkpoint` pointer is written atomically."""
    if mode == 'w' and osp.basename(os.fspath(file)) == POINTER:
        return _AtomicTextFile(os.fspath(file), *args, **kwargs)
    return builtins.open(file, mode, *args, **kwargs)


# ------------------------------------------------------------------------------- resume from a complete file
def is_complete(path: str) -> bool:
    """A torch.save zip whose central directory (written last) reads back; legacy non-zip files: non-empty."""
    if not osp.isfile(path) or osp.getsize(path) == 0:
        return False
    if not zipfile.is_zipfile(path):
        with builtins.open(path, 'rb') as f:
            return f.read(4) != b'PK\x03\x04'  # a zip start without a readable end: cut
    try:
        with zipfile.ZipFile(path) as z:
            return any(n.endswith('data.pkl') for n in z.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def find_last_complete_checkpoint(work_dir: str) -> str | None:
    """The checkpoint `last_checkpoint` names if complete (also looked up by name in `work_dir`, for a moved work
    dir), else the newest complete `*.pth` in `work_dir`; logs the choice and every file passed over."""
    pointer = osp.join(work_dir, POINTER)
    named = builtins.open(pointer).read().strip() if osp.isfile(pointer) else ''
    candidates = [named, osp.join(work_dir, osp.basename(named))] if named else []
    found = [osp.join(work_dir, f) for f in os.listdir(work_dir) if f.endswith('.pth')] if osp.isdir(work_dir) else []
    candidates += sorted(found, key=osp.getmtime, reverse=True)
    passed = []
    for path in dict.fromkeys(candidates):  # unique, in order
        if is_complete(path):
            why = f'; passed over {", ".join(passed)}' if passed else ''
            print_log(f'resume: last complete checkpoint is {path}{why}', logger='current',
                      level=logging.WARNING if passed else logging.INFO)
            return path
        passed.append(f'{path} ({"missing" if not osp.exists(path) else "incomplete"})')
    print_log(f'resume: no complete checkpoint in {work_dir}' + (f' (passed over {", ".join(passed)})' if passed
                                                                 else '') + '; starting from scratch',
              logger='current', level=logging.WARNING)
    return None


def install():
    """Apply the three patches once; calling again changes nothing."""
    put = local_backend.LocalBackend.put
    if not hasattr(put, 'atomic_original'):
        local_backend.LocalBackend.put = _atomic_put(put)
    _checkpoint_hook_module.open = _checkpoint_hook_open  # module global shadows the builtin for that module only
    _runner_module.find_latest_checkpoint = find_last_complete_checkpoint  # Runner.load_or_resume's auto resume
    _checkpoint_module.find_latest_checkpoint = find_last_complete_checkpoint


install()


# --------------------------------------------------------------------------------------------- exact resume
def rng_state() -> dict:
    state = dict(torch=torch.get_rng_state(), numpy=np.random.get_state(), python=random.getstate())
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict):
    torch.set_rng_state(state['torch'].cpu())  # resume may map tensors to the GPU
    np.random.set_state(state['numpy'])
    random.setstate(state['python'])
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state['cuda']])


def _world() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def _mid_accumulation(runner) -> bool:
    wrapper = runner.optim_wrapper
    return getattr(wrapper, '_accumulative_counts', 1) > 1 and wrapper._inner_count % wrapper._accumulative_counts


class _RestoreAfterSkip:
    """IterBasedTrainLoop replays `skip` batches to reach the resumed data position; the RNG state is set after
    them, so the next batch is drawn as in the uninterrupted run."""

    def __init__(self, iterator, skip: int, state: dict):
        self.iterator, self.skip, self.state = iterator, skip, state

    def __iter__(self):
        return self

    def __next__(self):
        if self.skip == 0 and self.state is not None:
            set_rng_state(self.state)
            self.state = None
        self.skip -= 1
        return next(self.iterator)


class ResumeStateHook(Hook):
    """Save per-rank RNG states and gradients accumulated since the last optimizer step into each checkpoint
    (`resume_state`), and restore them on `--resume`; validation runs on its own RNG so it cannot shift training."""

    priority = 'LOW'  # after_train_*: before CheckpointHook (VERY_LOW) writes the file

    def __init__(self):
        self.training = False
        self.captured = None  # multi-process: every rank's state, gathered where a checkpoint may follow
        self.train_rng = None  # the training RNG state while validation runs
        self.resumed = None

    def _local(self, runner) -> tuple[dict, dict | None]:
        grads = None
        if _mid_accumulation(runner):
            grads = {n: p.grad.detach().clone() for n, p in runner.model.named_parameters() if p.grad is not None}
        return self.train_rng or rng_state(), grads

    def _capture(self, runner):
        """Gather every rank's state (a collective: all ranks call it at the same points)."""
        state, grads = self._local(runner)
        states = [None] * _world()
        dist.all_gather_object(states, state)
        for g in (grads or {}).values():
            dist.all_reduce(g)  # DDP averages the accumulated sum at the next sync: store the mean
            g /= _world()
        self.captured = dict(rng=states, grads=grads)

    def _checkpoint_due(self, runner) -> bool:
        hook = next((h for h in runner.hooks if isinstance(h, CheckpointHook)), None)
        return hook is not None and not hook.by_epoch and (
            self.every_n_train_iters(runner, hook.interval, hook.save_begin) or self.is_last_train_iter(runner))

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if _world() > 1 and self._checkpoint_due(runner):
            self._capture(runner)

    def after_train_epoch(self, runner) -> None:
        if _world() > 1:
            self._capture(runner)

    def before_val(self, runner) -> None:
        if self.training:
            self.train_rng = rng_state()
            if _world() > 1:
                self._capture(runner)  # save_best writes during validation

    def after_val(self, runner) -> None:
        if self.train_rng is not None:
            set_rng_state(self.train_rng)
            self.train_rng = None

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if _world() > 1:
            state = self.captured
        else:
            rng, grads = self._local(runner)
            state = dict(rng=[rng], grads=grads)
        grads = state['grads'] and {n: g.cpu() for n, g in state['grads'].items()}
        checkpoint['resume_state'] = dict(rng=state['rng'], grads=grads, world_size=len(state['rng']))

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        if runner._resume:
            self.resumed = checkpoint.get('resume_state')
            if self.resumed is None:
                print_log('resume: the checkpoint holds no resume_state (RNG, accumulated gradients); training '
                          'continues, but not exactly as an uninterrupted run would', logger='current',
                          level=logging.WARNING)

    def before_train(self, runner) -> None:
        self.training = True
        state, self.resumed = self.resumed, None
        if state is not None:
            self._restore(runner, state)

    def after_train(self, runner) -> None:
        self.training = False

    def _restore(self, runner, state: dict):
        rank = dist.get_rank() if _world() > 1 else 0
        if state['world_size'] != _world():
            print_log(f'resume: checkpoint saved by {state["world_size"]} processes, now {_world()}: RNG states and '
                      'accumulated gradients are not restored', logger='current', level=logging.WARNING)
            return
        params = dict(runner.model.named_parameters())
        for name, grad in (state['grads'] or {}).items():
            params[name].grad = grad.to(params[name].device, params[name].dtype)
        loop = runner.train_loop
        if isinstance(loop, IterBasedTrainLoop) and loop.iter > 0:
            loop.dataloader_iterator = _RestoreAfterSkip(loop.dataloader_iterator, loop.iter, state['rng'][rank])
        else:
            set_rng_state(state['rng'][rank])
        print_log(f'resume: restored RNG states{" and accumulated gradients" if state["grads"] else ""} '
                  f'(rank {rank} of {_world()})', logger='current')
