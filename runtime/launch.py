"""Train or test any stage (FCMAE pre-training, ImageNet fine-tuning, COCO detection, ADE20K segmentation) with
mmengine's Runner: config → Runner → train/test; what tools/train.py and tools/test.py call."""
import gc
import json
import os
import os.path as osp
import time

import datachecks
import torch
from backbone.zoo import resolve
from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from .amp import eager_optimizer_step
from .config import check_pretrained, load_cfg, scale_lr, set_pretrained, set_resume
from .dist import setup_dist
from .evaluation import TASKS, add_dump, enable_tta, enable_visualization, to_json
from .resume import check_resume_path


def build_runner(cfg: Config) -> Runner:
    """The config's `runner_type` (the base configs name runtime's SafeLoadRunner), else mmengine's Runner."""
    return RUNNERS.build(cfg) if 'runner_type' in cfg else Runner.from_cfg(cfg)


def leave_process_group(runner: Runner | None = None):
    """Leave the process group at the end of a distributed run, and let the backend die while the interpreter is
    alive: a DDP wrapper still holding the group keeps gloo's threads until interpreter finalization, where a rank
    aborts ('terminate called without an active exception', 2 of 30 two-rank runs) after the work is done."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
        if runner is not None and is_model_wrapper(runner.model):
            runner.model = runner.model.module  # the wrapper holds the group; its module is the trained model
        gc.collect()  # runners left in reference cycles (seg_eval's passes) release their wrappers now


def train(config: str, work_dir: str | None = None, resume: str | None = None, amp: bool = False,
          amp_dtype: str | None = None, auto_scale_lr: bool = False, pretrained: str | None = None,
          cfg_options: dict | None = None, launcher: str = 'none', compile: bool = False,
          preflight: bool = True) -> Runner:
    """Train `config`; `resume='auto'` continues from the work dir's last complete checkpoint, a path from that file.
    The process group is up (setup_dist) before anything reads the rank or the world size (lr, preflight)."""
    cfg = load_cfg(config, cfg_options or {}, work_dir, launcher, amp, amp_dtype)
    _, world_size = setup_dist(cfg)
    if pretrained:
        set_pretrained(cfg, pretrained)
    lr = scale_lr(cfg, world_size, auto_scale_lr)
    if compile:
        cfg.compile = True  # mmengine's Runner wraps model.train_step in torch.compile
    if cfg.get('compile'):
        eager_optimizer_step(cfg)  # the optimizer step outside the compiled graphs (runtime/amp.py)
    if resume and resume != 'auto':
        check_resume_path(resume, schedulers=bool(cfg.get('param_scheduler')))  # a best_*.pth: a named error
    choice = set_resume(cfg, resume) if resume else None
    check_pretrained(cfg)
    if preflight:
        datachecks.check(cfg)  # bad annotations: a named error or counted skip now, not a crash mid-training
    runner = build_runner(cfg)
    for message, level in filter(None, (lr, choice)):
        print_log(message, logger=runner.logger, level=level)  # in the run's own log
    runner.train()
    leave_process_group(runner)
    return runner


def test(config: str, checkpoint: str, work_dir: str | None = None, out: str | None = None,
         show_dir: str | None = None, tta: bool = False, json_out: str | None = None,
         cfg_options: dict | None = None, launcher: str = 'none') -> dict:
    """Runner.test() of `checkpoint`; writes config, checkpoint, task and metrics as JSON (default
    <work_dir>/test_results.json) for tools/compare.py, and returns the same dict."""
    local = resolve(checkpoint)  # a path as is; a URL or model-zoo name: fetched once into torch.hub's cache
    if not osp.isfile(local):
        raise FileNotFoundError(f'checkpoint {checkpoint!r} does not exist')
    cfg = load_cfg(config, cfg_options or {}, work_dir, launcher)
    setup_dist(cfg)
    cfg.load_from = local
    task = TASKS.get(cfg.get('default_scope'), 'cls')
    if show_dir:
        enable_visualization(cfg, task, show_dir)
    if tta:
        enable_tta(cfg, task)
    runner = build_runner(cfg)
    if out:
        add_dump(runner, task, out)
    start = time.time()
    metrics = runner.test()
    result = dict(config=config, checkpoint=checkpoint, task=task, tta=tta, metrics=to_json(metrics),
                  time=time.strftime('%Y-%m-%dT%H:%M:%S%z'), seconds=round(time.time() - start, 3))
    if runner.rank == 0:
        path = json_out or osp.join(cfg.work_dir, 'test_results.json')
        os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
        with open(path, 'w') as f:
            json.dump(result, f, indent=2)
        print(f'tools/test.py: wrote {path}')
    leave_process_group(runner)
    return result
