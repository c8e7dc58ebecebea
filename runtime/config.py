"""The config side of every entry script: load a config with overrides, re-point its data, set the launcher, AMP,
the pretrained checkpoint and the checkpoint to resume from, before mmengine's Runner is built."""
import logging
import os
import os.path as osp
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
    if amp or amp_dtype:  # mmengine's AmpOptimWrapper on a GPU, autocast on the CPU (runtime/amp.py)
        cfg.optim_wrapper.update(type='DeviceAmpOptimWrapper', loss_scale='dynamic')
        if amp_dtype:
            cfg.optim_wrapper.dtype = amp_dtype
    if not torch.cuda.is_available():
        use_cpu(cfg)
    return cfg


def use_cpu(cfg: Config):
    """Without CUDA: mmengine's AmpOptimWrapper (it asserts a GPU) -> DeviceAmpOptimWrapper, which autocasts on the
    CPU in optim_wrapper.dtype (float32 without one). The process group and DDP's device
    ids: runtime.dist.setup_dist."""
    if cfg.get('optim_wrapper', {}).get('type') == 'AmpOptimWrapper':
        dtype = cfg.optim_wrapper.get('dtype')
        how = f'{dtype} autocast' if dtype else 'float32: no optim_wrapper.dtype'
        print(f'runtime: no CUDA device, so AmpOptimWrapper -> DeviceAmpOptimWrapper ({how} on the CPU)',
              file=sys.stderr)
        cfg.optim_wrapper.type = 'DeviceAmpOptimWrapper'


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


def scale_lr(cfg: Config, world_size: int, auto_scale: bool = False) -> tuple[str, int] | None:
    """Set this run's lr by the linear scaling rule from its effective batch (world size × train_dataloader.batch_size
    × optim_wrapper.accumulative_counts) and the batch the recipe was written for (auto_scale_lr.base_batch_size).
    Pre-training and fine-tuning state `blr`: lr = blr × batch / 256 (paper A.2, main_pretrain.py); an explicit
    optimizer lr (the official --lr; detection and segmentation) is the lr at the recipe's batch. `auto_scale`
    (--auto-scale-lr, or auto_scale_lr.enable): lr follows the effective batch; otherwise the recipe's lr, with a
    warning when the batches differ. `min_lr` (the official --min_lr, an absolute floor): every CosineAnnealingLR
    without eta_min gets eta_min_ratio = min_lr / lr, so each group ends at min_lr × its layer-decay scale.
    Returns (log line, level) for the run's log, or None for a config without an optimizer lr or blr."""
    wrapper, scaling = cfg.get('optim_wrapper') or {}, cfg.get('auto_scale_lr') or {}
    opt, base = wrapper.get('optimizer') or {}, scaling.get('base_batch_size')
    auto_scale = auto_scale or scaling.get('enable', False)
    explicit = opt.get('lr') is not None
    if base is None and (auto_scale or ('blr' in cfg and not explicit)):
        raise KeyError(f'{"--auto-scale-lr" if auto_scale else "blr"}: {getattr(cfg, "filename", "the config")} has '
                       'no auto_scale_lr.base_batch_size (the effective batch its lr was written for)')
    if base is None or not (explicit or 'blr' in cfg):
        return None
    batch, accumulation = cfg.train_dataloader.batch_size, wrapper.get('accumulative_counts', 1)
    effective = world_size * batch * accumulation
    if explicit:
        lr0, rule = opt['lr'], f'{opt["lr"]:g} × {{n}} / {base}'
    else:
        lr0, rule = cfg.blr * base / 256, f'blr × {{n}} / 256 = {cfg.blr:g} × {{n}} / 256'
    lr = lr0 * effective / base if auto_scale else lr0
    opt['lr'] = lr
    cfg.auto_scale_lr = dict(scaling, enable=False, base_batch_size=base)  # done here: mmengine must not scale again
    if cfg.get('min_lr') is not None:
        schedulers = cfg.get('param_scheduler') or []
        for s in [schedulers] if isinstance(schedulers, dict) else schedulers:
            if s.get('type') == 'CosineAnnealingLR' and s.get('eta_min') is None:
                s['eta_min_ratio'] = cfg.min_lr / lr
    head = f'lr: world size {world_size} × batch {batch} × accumulation {accumulation} = effective {effective}; '
    if auto_scale:
        return head + f'lr = {rule.format(n=effective)} = {lr:.4g} (--auto-scale-lr; recipe batch {base})', logging.INFO
    if effective == base:
        return head + f'lr = {rule.format(n=base)} = {lr:.4g}', logging.INFO
    return head + (f'but the recipe is for batch {base} (auto_scale_lr.base_batch_size): lr stays '
                   f'{rule.format(n=base)} = {lr:.4g}; --auto-scale-lr gives {rule.format(n=effective)} = '
                   f'{lr0 * effective / base:.4g}'), logging.WARNING
