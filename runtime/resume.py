"""Exact resume for mmengine 0.10.7 runs of every stage: what mmengine's checkpoints do not bring back.

- `ResumeStateHook` stores torch/numpy/python RNG states of every rank (FCMAE masks, drop path, augmentation) and
  gradients accumulated since the last optimizer step, and puts them back where the interrupted run was.
- `keep_seed(cfg)` gives a resumed run the seed of the run it continues *before* the runner builds the sampler and the
  loader workers from it (mmengine reads the seed from the checkpoint only afterwards): configs without a fixed seed
  would otherwise resume with another data order.
- `epoch_worker_init_fn` seeds loader workers from torch's per-epoch worker seed (drawn from the main process's RNG,
  which the hook restores): epoch-based loaders without persistent workers then draw new augmentations every epoch
  and the same ones after a resume. (mmengine's default seeds from seed, rank and worker id only: every epoch repeats
  one random sequence; persistent workers carry RNG streams that no checkpoint holds.)

Its one access to mmengine internals, the loop's data iterator, goes through runtime.mmengine_private.
"""
import logging
import os
import random

import numpy as np
import torch
import torch.distributed as dist
from mmengine.hooks import CheckpointHook, Hook
from mmengine.logging import print_log
from mmengine.runner.loops import IterBasedTrainLoop

from backbone.checkpoint import safe_load

from .atomic import not_resumable
from .mmengine_private import wrap_train_iterator

# what mmengine 0.10.7's Runner.resume reads besides the weights: `meta` and `message_hub` (a bare KeyError without
# them), `optimizer` and `param_schedulers` (skipped without a word when absent: AdamW and the schedule restart)
RESUME_READS = ('meta', 'optimizer', 'param_schedulers', 'message_hub')


def check_resume_path(path: str, schedulers: bool = True) -> None:
    """An explicit `--resume PATH` must hold all that a resume restores (`param_schedulers` only when the config has
    schedulers: mmengine saves them only then); else an error naming the file, what it lacks, and how to start from
    its weights alone. A URL is left to mmengine."""
    if '://' in path:
        return
    if not os.path.isfile(path):
        raise FileNotFoundError(f'--resume {path}: no such file')
    why = not_resumable(path, tuple(k for k in RESUME_READS if schedulers or k != 'param_schedulers'))
    if why:
        raise ValueError(f'--resume {path}: {why}. To start from its weights with a new optimizer and schedule: '
                         f'--cfg-options load_from={path} without --resume (or --pretrained / the backbone\'s '
                         'init_cfg for the backbone alone)')


def keep_seed(cfg) -> int | None:
    """On `cfg.resume` with `cfg.load_from` set, set cfg.randomness.seed to the seed stored in that checkpoint."""
    path = cfg.get('load_from')
    if not cfg.get('resume') or not path or '://' in path:
        return None
    seed = safe_load(path, mmap=True).get('meta', {}).get('seed')  # every rank: metadata only, not the tensors
    if seed is not None:
        cfg.randomness = dict(cfg.get('randomness') or {}, seed=seed)
    return seed


def epoch_worker_init_fn(worker_id: int) -> None:
    """In a loader worker: reseed python, numpy and torch from torch's worker seed (base seed of this epoch's
    iterator + worker id), offset by the rank so that ranks differ."""
    seed = (torch.initial_seed() + 1_000_003 * int(os.environ.get('RANK', 0))) % 2 ** 32
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


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
    """Gradients are pending: the iteration just done did not step the optimizer (OptimWrapper.should_update)."""
    return not runner.optim_wrapper.should_update()


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
    (`resume_state`), and restore them on `--resume`; validation runs on its own RNG so it cannot shift training.

    With several processes the states are gathered (a collective) in the hook stage where CheckpointHook may save,
    since mmengine calls before_save_checkpoint on rank 0 only; that copy of the pending gradients is released
    when the stage is over, before the next iteration, epoch or validation."""

    priority = 'LOW'  # after_train_*: before CheckpointHook (VERY_LOW) writes the file

    def __init__(self):
        self.training = False
        self.captured = None  # multi-process: every rank's state, while a checkpoint of this hook stage may follow
        self.train_rng = None  # the training RNG state while validation runs
        self.loaded = None  # (resume_state or None,) of a checkpoint loaded before training

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

    def _checkpoint_due(self, runner, by_epoch: bool) -> bool:
        """CheckpointHook (by_epoch as asked) saves in this after_train_iter / after_train_epoch (or the last)."""
        hook = next((h for h in runner.hooks if isinstance(h, CheckpointHook)), None)
        if hook is None or hook.by_epoch != by_epoch:
            return False
        if by_epoch:
            return self.every_n_epochs(runner, hook.interval, hook.save_begin) or self.is_last_train_epoch(runner)
        return self.every_n_train_iters(runner, hook.interval, hook.save_begin) or self.is_last_train_iter(runner)

    def _release(self) -> None:
        """The stage whose checkpoints needed the gathered state is over: drop it (and its gradient copy)."""
        self.captured = None

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if _world() > 1 and self._checkpoint_due(runner, by_epoch=False):
            self._capture(runner)

    def after_train_epoch(self, runner) -> None:
        self._release()  # what after_train_iter gathered for the last iteration's checkpoint
        if _world() > 1 and self._checkpoint_due(runner, by_epoch=True):
            self._capture(runner)

    def before_train_epoch(self, runner) -> None:
        self._release()

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        self._release()

    def before_val(self, runner) -> None:
        self._release()
        if self.training:
            self.train_rng = rng_state()
            if _world() > 1:
                self._capture(runner)  # save_best writes during validation

    def after_val(self, runner) -> None:
        self._release()
        if self.train_rng is not None:
            set_rng_state(self.train_rng)
            self.train_rng = None

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if _world() == 1:
            rng, grads = self._local(runner)
            state = dict(rng=[rng], grads=grads)
        elif self.captured is None:  # a save outside the stages above: rank 0 alone cannot gather the others
            print_log('ResumeStateHook: a checkpoint saved where the ranks\' states were not gathered holds no '
                      'resume_state', logger='current', level=logging.WARNING)
            return
        else:
            state = self.captured
        grads = state['grads'] and {n: g.cpu() for n, g in state['grads'].items()}
        checkpoint['resume_state'] = dict(rng=state['rng'], grads=grads, world_size=len(state['rng']))

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        self.loaded = (checkpoint.get('resume_state'),)

    def before_train(self, runner) -> None:
        """A resumed run starts past iteration 0 (a checkpoint loaded with load_from alone does not): restore it."""
        self.training = True
        loaded, self.loaded = self.loaded, None
        if loaded is None or runner.iter == 0:
            return
        if loaded[0] is None:
            print_log('resume: the checkpoint holds no resume_state (RNG, accumulated gradients); training '
                      'continues, but not exactly as an uninterrupted run would', logger='current',
                      level=logging.WARNING)
        else:
            self._restore(runner, loaded[0])

    def after_train(self, runner) -> None:
        self.training = False
        self._release()

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
            wrap_train_iterator(loop, lambda iterator: _RestoreAfterSkip(iterator, loop.iter, state['rng'][rank]))
        else:
            set_rng_state(state['rng'][rank])
        print_log(f'resume: restored RNG states{" and accumulated gradients" if state["grads"] else ""} '
                  f'(rank {rank} of {_world()})', logger='current')
