"""Train any stage of the suite (FCMAE pretraining, ImageNet fine-tuning, COCO detection, ADE20K segmentation) with
mmengine's Runner: config → Runner.from_cfg → train. Shaped after mmdet/mmseg tools/train.py; one script for all."""
import argparse
import datetime
import os
import os.path as osp
import sys

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)  # configs import `backbone`, `pretrain` from the repository root

import torch  # noqa: E402
from mmengine.config import Config, DictAction  # noqa: E402

import backbone  # noqa: E402,F401  (registers ConvNeXtV2; weights-only torch.load that still resumes mmengine ckpts)
from backbone import resume  # noqa: E402
from tools import preflight  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a model of any stage (pretrain, finetune, det, seg)')
    parser.add_argument('config', help='config file')
    parser.add_argument('--work-dir', help='where logs and checkpoints go (default ./work_dirs/<config name>)')
    parser.add_argument('--resume', nargs='?', const='auto',
                        help='resume from PATH, or without PATH from the last checkpoint in the work dir')
    parser.add_argument('--amp', action='store_true', help='mixed precision (AmpOptimWrapper)')
    parser.add_argument('--auto-scale-lr', action='store_true', help='lr × batch / base_batch_size')
    parser.add_argument('--pretrained', help='checkpoint for the backbone (any format backbone.checkpoint reads)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                        help='key=value overrides; data_root=PATH re-points every dataset and evaluator using it')
    parser.add_argument('--launcher', choices=['none', 'pytorch'], default='none', help='job launcher')
    parser.add_argument('--no-preflight', action='store_true', help='skip the data checks of tools/preflight.py')
    return parser.parse_args(argv)


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


def load_cfg(config: str, cfg_options: dict, work_dir: str | None, launcher: str, amp: bool = False) -> Config:
    """Config with overrides applied, work dir chosen and the launcher set up (shared with tools/test.py)."""
    cfg = Config.fromfile(config)
    old_root = cfg.get('data_root')
    cfg.merge_from_dict(cfg_options)
    if old_root and cfg.get('data_root') != old_root:
        for key in [k for k in cfg if k.endswith(('_dataloader', '_evaluator'))]:
            retarget_data_root(cfg[key], old_root, cfg.data_root)
    cfg.work_dir = work_dir or cfg.get('work_dir') or osp.join('./work_dirs', osp.splitext(osp.basename(config))[0])
    cfg.launcher = launcher
    if amp:
        cfg.optim_wrapper.update(type='AmpOptimWrapper', loss_scale='dynamic')
    if not torch.cuda.is_available():
        use_cpu(cfg)
    return cfg


def use_cpu(cfg: Config):
    """Without CUDA: gloo instead of NCCL (mmengine's init_dist would call torch.cuda.set_device), DDP without
    device ids, and fp32 since AmpOptimWrapper refuses to run on CPU."""
    if cfg.get('optim_wrapper', {}).get('type') == 'AmpOptimWrapper':
        print('tools: no CUDA device, so AmpOptimWrapper -> OptimWrapper (fp32)', file=sys.stderr)
        cfg.optim_wrapper.type = 'OptimWrapper'
        for key in ('loss_scale', 'dtype'):
            cfg.optim_wrapper.pop(key, None)
    if cfg.launcher == 'none':
        return
    cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})['backend'] = 'gloo'
    if not torch.distributed.is_initialized():
        timeout = datetime.timedelta(seconds=cfg.env_cfg.dist_cfg.get('timeout', 1800))  # a hung peer: bounded wait
        torch.distributed.init_process_group('gloo', timeout=timeout)  # env:// rendezvous from torchrun
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
    """Fail before building anything when a Pretrained init_cfg names a checkpoint file that is not there."""
    for key, init in pretrained_inits(cfg.get('model', {}), 'model'):
        ckpt = init.get('checkpoint')
        if not ckpt:
            raise ValueError(f'{key}: type Pretrained without a checkpoint; set --pretrained PATH or '
                             f'--cfg-options {key}.checkpoint=PATH')
        if '://' not in ckpt and not osp.isfile(ckpt):
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


def leave_process_group():
    """Leave the process group at the end of a distributed run: gloo threads that outlive the interpreter abort it
    at exit ('terminate called without an active exception') after the work is done."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


def build_runner(cfg: Config):
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner
    return RUNNERS.build(cfg) if 'runner_type' in cfg else Runner.from_cfg(cfg)


def main(argv=None):
    args = parse_args(argv)
    cfg = load_cfg(args.config, args.cfg_options, args.work_dir, args.launcher, args.amp)
    if args.pretrained:
        set_pretrained(cfg, args.pretrained)
    if args.auto_scale_lr:
        if 'base_batch_size' not in cfg.get('auto_scale_lr', {}):
            raise KeyError(f'--auto-scale-lr: {args.config} has no auto_scale_lr.base_batch_size')
        cfg.auto_scale_lr.enable = True
    if args.resume:
        cfg.resume, cfg.load_from = True, None if args.resume == 'auto' else args.resume
        resume.keep_seed(cfg)  # the interrupted run's seed, before the sampler and loader workers are built
    check_pretrained(cfg)
    if not args.no_preflight:
        preflight.check(cfg)  # bad annotations: a named error or counted skip now, not a crash mid-training
    runner = build_runner(cfg)
    runner.train()
    leave_process_group()
    return runner


if __name__ == '__main__':
    main()
