"""The runtime that makes mmengine runs of every stage atomic, exactly resumable and safely loadable, and the config
and launch helpers the entry scripts share. Importing this package registers, once, in mmengine's root registries:
the `atomic_local` file backend, `AtomicCheckpointHook`, `ResumeStateHook`, `PublishCheckpointHook`,
`epoch_worker_init_fn`, `SafeLoadRunner`, `DeviceAmpOptimWrapper` and `EagerStepOptimWrapper`; the base configs
name them (default_hooks, custom_hooks, worker_init_fn, runner_type, optim_wrapper; the last one under --compile).
`runtime.det_amp` (the RPN head and RoI extractor that feed mmcv's ops the dtypes they take under AMP) needs mmdet,
so the detection configs import it (custom_imports) and `runtime` stays importable without mmdet."""
from mmengine.fileio import register_backend
from mmengine.registry import FUNCTIONS, HOOKS, OPTIM_WRAPPERS, RUNNERS

from .amp import DeviceAmpOptimWrapper, EagerStepOptimWrapper, eager_optimizer_step
from .atomic import (BACKEND, AtomicCheckpointHook, AtomicLocalBackend, choose_checkpoint,
                     find_last_complete_checkpoint, is_complete)
from .config import (check_pretrained, load_cfg, pretrained_inits, retarget_data_root, scale_lr, set_pretrained,
                     set_resume, use_cpu)
from .curves import VIS_BACKENDS, vis_backends
from .dist import backend_and_device, setup_dist, slurm_env
from .evaluation import TASKS, enable_tta, enable_visualization, to_json
from .launch import build_runner, leave_process_group, test, train
from .publish import PublishCheckpointHook, publish_checkpoint
from .resume import ResumeStateHook, epoch_worker_init_fn, keep_seed, rng_state, set_rng_state
from .mmengine_private import problems as mmengine_problems  # every mmengine internal used, checked
from .runner import SafeLoadRunner, mmengine_checkpoints

register_backend(BACKEND, AtomicLocalBackend)  # no URI prefix: used only where backend_args name it
HOOKS.register_module(module=AtomicCheckpointHook)
HOOKS.register_module(module=ResumeStateHook)
HOOKS.register_module(module=PublishCheckpointHook)
FUNCTIONS.register_module(module=epoch_worker_init_fn)
RUNNERS.register_module(module=SafeLoadRunner)
OPTIM_WRAPPERS.register_module(module=DeviceAmpOptimWrapper)
OPTIM_WRAPPERS.register_module(module=EagerStepOptimWrapper)

__all__ = ['AtomicCheckpointHook', 'AtomicLocalBackend', 'DeviceAmpOptimWrapper', 'EagerStepOptimWrapper',
           'PublishCheckpointHook', 'ResumeStateHook', 'SafeLoadRunner', 'TASKS', 'VIS_BACKENDS', 'backend_and_device',
           'build_runner', 'check_pretrained', 'choose_checkpoint', 'eager_optimizer_step', 'enable_tta',
           'enable_visualization', 'epoch_worker_init_fn',
           'find_last_complete_checkpoint', 'is_complete', 'keep_seed', 'leave_process_group', 'load_cfg',
           'mmengine_checkpoints', 'mmengine_problems', 'pretrained_inits', 'publish_checkpoint',
           'retarget_data_root', 'rng_state', 'scale_lr', 'set_pretrained', 'set_resume', 'set_rng_state',
           'setup_dist', 'slurm_env', 'test', 'to_json', 'train', 'use_cpu', 'vis_backends']
