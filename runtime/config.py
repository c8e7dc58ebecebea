"""The config side of every entry script: load a config with overrides, re-point its data, set the launcher, AMP,
the pretrained checkpoint and the checkpoint to resume from, before mmengine's Runner is built."""
import datetime
import logging
import os
import os.path as osp
import subprocess
import sys

import torch
from mmengine.config import Config

from backbone.zoo import is_remote

from .atomic import choose_checkpoint
from .resume import keep_seed


def retarget_data_root(node, old: str, new: str):
    """Replace the config's `data_root` in dataset `data_root`s and evaluator `ann_file`s (resolved at load time)."""
    if isinstance(node, (list, tuple)):
        for item in node:
            retarget_data_root(item, old, new)
    elif isinstance(node, dict):
        for key, value in node.items():
            if key == 'data_root' and value == old:
                node[key] = new
            elif key == 'ann_file' and isinstance(value, str) and value.startswith(old):
                node[key] = osp.join(new, value[len(old):])
            else:
                retarget_data_root(value, old, new)


def load_cfg(config: str, cfg_options: dict, work_dir: str | None, launcher: str, amp: bool = False,
             amp_dtype: str | None = None) -> Config:
    """Config with overrides applied, work dir chosen, AMP (`amp_dtype` implies it) and the launcher set up."""
    cfg = Config.fromfile(config)
    old_root = cfg.get('data_root')
    cfg.merge_from_dict(cfg_options or {})
    if old_root and cfg.get('data_root') != old_root:
        for key in [k for k in cfg if k.endswith(('_dataloader', '_evaluator'))]:
            retarget_data_root(cfg[key], old_root, cfg.data_root)
    cfg.work_dir = work_dir or cfg.get('work_dir') or osp.join('./work_dirs', osp.splitext(osp.basename(config))[0])
    cfg.launcher = launcher
    if amp or amp_dtype:
        cfg.optim_wrapper.update(type='AmpOptimWrapper', loss_scale='dynamic')
        if amp_dtype:
            cfg.optim_wrapper.dtype = amp_dtype
    if not torch.cuda.is_available():
        use_cpu(cfg)
    return cfg


def slurm_env() -> dict:
    """RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT of this srun task, as mmengine's slurm launcher sets
    them (MASTER_* from the environment when given; else the first node of SLURM_NODELIST and port 29500)."""
    missing = [k for k in ('SLURM_PROCID', 'SLURM_NTASKS', 'SLURM_NODELIST') if k not in os.environ]
    if missing:
        raise RuntimeError(f'--launcher slurm: {", ".join(missing)} not set; start the tasks with srun '
                           '(tools/slurm_train.sh)')
    env = dict(RANK=os.environ['SLURM_PROCID'], WORLD_SIZE=os.environ['SLURM_NTASKS'],
               LOCAL_RANK=os.environ.get('SLURM_LOCALID', '0'), MASTER_PORT=os.environ.get('MASTER_PORT', '29500'))
    if 'MASTER_ADDR' not in os.environ:
        nodes = os.environ['SLURM_NODELIST']
        try:
            env['MASTER_ADDR'] = subprocess.run(['scontrol', 'show', 'hostnames', nodes], capture_output=True,
                                                text=True, check=True).stdout.split()[0]
        except (OSError, subprocess.CalledProcessError, IndexError) as e:
            raise RuntimeError(f'--launcher slurm: no master address from `scontrol show hostnames {nodes}` '
                               f'({type(e).__name__}: {e}); set MASTER_ADDR') from None
    return env


def use_cpu(cfg: Config):
    """Without CUDA: fp32 (AmpOptimWrapper asserts a GPU, for float16 and bfloat16 alike), gloo instead of NCCL
    (mmengine's init_dist would call torch.cuda.set_device), for torchrun and srun tasks, DDP without device ids."""
    if cfg.get('optim_wrapper', {}).get('type') == 'AmpOptimWrapper':
        print('runtime: no CUDA device, so AmpOptimWrapper -> OptimWrapper (fp32)', file=sys.stderr)
        cfg.optim_wrapper.type = 'OptimWrapper'
        for key in ('loss_scale', 'dtype'):
            cfg.optim_wrapper.pop(key, None)
    if cfg.launcher == 'none':
        return
    cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})['backend'] = 'gloo'
    if not torch.distributed.is_initialized():
        if cfg.launcher == 'slurm':
            os.environ.update(slurm_env())
        timeout = datetime.timedelta(seconds=cfg.env_cfg.dist_cfg.get('timeout', 1800))  # a hung peer: bounded wait
        torch.distributed.init_process_group('gloo', timeout=timeout)  # env:// rendezvous
    wrapper = cfg.get('model_wrapper_cfg') or dict(
        type='MMDistributedDataParallel', broadcast_buffers=False,
        find_unused_parameters=cfg.get('find_unused_parameters', False))
    cfg.model_wrapper_cfg = dict(wrapper, device_ids=None)  # CPU modules take no device ids


def pretrained_inits(node, path: str):
    """(key path, init_cfg) of every init_cfg of type Pretrained under `node`."""
    if isinstance(node, dict):
        if node.get('type') == 'Pretrained':
            yield path, node
        for key, value in node.items():
            yield from pretrained_inits(value, f'{path}.{key}')
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            yield from pretrained_inits(value, f'{path}.{i}')


def check_pretrained(cfg: Config):
    """Fail before building anything when a Pretrained init_cfg names a local checkpoint file that is not there
    (URLs and model-zoo names are fetched by the loader)."""
    for key, init in pretrained_inits(cfg.get('model', {}), 'model'):
        ckpt = init.get('checkpoint')
        if not ckpt:
            raise ValueError(f'{key}: type Pretrained without a checkpoint; set --pretrained PATH or '
                             f'--cfg-options {key}.checkpoint=PATH')
        if '://' not in ckpt and not is_remote(ckpt) and not osp.isfile(ckpt):
            raise FileNotFoundError(f'{key}.checkpoint: {ckpt!r} does not exist (relative to {os.getcwd()}); run the '
                                    f'upstream stage or point to the file with --pretrained PATH or '
                                    f'--cfg-options {key}.checkpoint=PATH')


def set_pretrained(cfg: Config, path: str):
    """`--pretrained PATH` → init_cfg at cfg.pretrained_key (default model.backbone.init_cfg)."""
    key = cfg.get('pretrained_key', 'model.backbone.init_cfg')
    parts = key.split('.')
    parent = cfg.get(parts[0])
    for part in parts[1:-1]:
        parent = parent.get(part) if isinstance(parent, dict) else None
    if not isinstance(parent, dict):
        raise KeyError(f'--pretrained: the config has no {key.rsplit(".", 1)[0]}; declare where the checkpoint '
                       f"goes with pretrained_key = '<path to an init_cfg>'")
    cfg.merge_from_dict({key: dict(type='Pretrained', checkpoint=path)})


def set_resume(cfg: Config, resume: str) -> tuple[str, int]:
    """`--resume` ('auto': the work dir's last complete checkpoint, or a fresh start without one; else a PATH):
    load_from and resume for the Runner, and the interrupted run's seed before the sampler is built. Returns the
    choice as (message, log level), for the run's log once the runner exists."""
    path, message, level = choose_checkpoint(cfg.work_dir) if resume == 'auto' else (
        resume, f'resume: from {resume}', logging.INFO)
    cfg.resume, cfg.load_from = path is not None, path
    keep_seed(cfg)
    return message, level
