"""The runtime that makes mmengine runs of every stage atomic, exactly resumable and safely loadable, and the config
and launch helpers the entry scripts share. Importing this package registers, once, in mmengine's root registries:
the `atomic_local` file backend, `AtomicCheckpointHook`, `ResumeStateHook`, `epoch_worker_init_fn` and
`SafeLoadRunner`; the base configs name them (default_hooks, custom_hooks, worker_init_fn, runner_type)."""
from mmengine.fileio import register_backend
from mmengine.registry import FUNCTIONS, HOOKS, RUNNERS

from .atomic import (BACKEND, AtomicCheckpointHook, AtomicLocalBackend, choose_checkpoint,
                     find_last_complete_checkpoint, is_complete)
from .config import (check_pretrained, load_cfg, pretrained_inits, retarget_data_root, set_pretrained, set_resume,
                     slurm_env, use_cpu)
from .evaluation import TASKS, enable_tta, enable_visualization, to_json
from .launch import build_runner, leave_process_group, test, train
from .resume import ResumeStateHook, epoch_worker_init_fn, keep_seed, rng_state, set_rng_state
from .runner import SafeLoadRunner, mmengine_checkpoints

register_backend(BACKEND, AtomicLocalBackend)  # no URI prefix: used only where backend_args name it
HOOKS.register_module(module=AtomicCheckpointHook)
HOOKS.register_module(module=ResumeStateHook)
FUNCTIONS.register_module(module=epoch_worker_init_fn)
RUNNERS.register_module(module=SafeLoadRunner)

__all__ = ['AtomicCheckpointHook', 'AtomicLocalBackend', 'ResumeStateHook', 'SafeLoadRunner', 'TASKS',
           'build_runner', 'check_pretrained', 'choose_checkpoint', 'enable_tta', 'enable_visualization',
           'epoch_worker_init_fn', 'find_last_complete_checkpoint', 'is_complete', 'keep_seed', 'leave_process_group',
           'load_cfg', 'mmengine_checkpoints', 'pretrained_inits', 'retarget_data_root', 'rng_state', 'set_pretrained',
           'set_resume', 'set_rng_state', 'slurm_env', 'test', 'to_json', 'train', 'use_cpu']
