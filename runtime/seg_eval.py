"""ADE20K evaluation in one go (paper A.4): the single-scale sliding-window test and the multi-scale test, written to
one JSON with mIoU / mAcc / aAcc and the per-class IoU of each (tools/seg_eval.py). Importing this module registers
`PerClassIoUMetric` in mmseg's metric registry."""
import json
import math
import os
import os.path as osp
import time
from datetime import datetime

from mmengine.config import Config
from mmengine.dist import get_rank
from mmseg.evaluation import IoUMetric
from mmseg.registry import METRICS

from .config import load_cfg
from .dist import setup_dist
from .evaluation import enable_tta, enable_visualization, set_tta_flip, test_time_aug  # noqa: F401 (set_tta_flip: API)
from .launch import build_runner, leave_process_group


@METRICS.register_module()
class PerClassIoUMetric(IoUMetric):
    """mmseg's IoUMetric, also returning the per-class IoU it otherwise only logs as a table (None where a class is
    in neither prediction nor ground truth, which mIoU skips too)."""

    def compute_metrics(self, results: list) -> dict:
        intersect = sum(r[0] for r in results)
        union = sum(r[1] for r in results)
        metrics = super().compute_metrics(results)
        iou = (intersect / union).tolist()
        metrics['per_class_IoU'] = {name: None if math.isnan(v) else round(100 * v, 2)
                                    for name, v in zip(self.dataset_meta['classes'], iou)}
        return metrics


def default_work_dir(config: str, work_dir: str | None) -> str:
    return work_dir or osp.join('work_dirs', osp.splitext(osp.basename(config))[0])


def build_cfg(config: str, checkpoint: str, multi_scale: bool, work_dir: str | None = None,
              cfg_options: dict | None = None, launcher: str = 'none', flip: bool = False,
              show_dir: str | None = None) -> Config:
    """The config of one pass: the config's own test (single scale) or its tta_pipeline under its tta_model."""
    mode = 'multi_scale' if multi_scale else 'single_scale'
    cfg = load_cfg(config, cfg_options or {}, osp.join(default_work_dir(config, work_dir), mode), launcher)
    setup_dist(cfg)  # the process group of a torchrun / srun task (once; a second pass finds it up)
    # a name of its own per pass: mmengine keeps one logger and one visualizer (save_dir) per experiment name
    cfg.experiment_name = f'{osp.basename(config)[:-3]}_{mode}_{datetime.now():%Y%m%d_%H%M%S_%f}'
    cfg.visualizer['name'] = cfg.experiment_name  # mmseg's runtime names it 'visualizer' for every run
    cfg.load_from = checkpoint
    if not isinstance(cfg.test_evaluator, dict) or cfg.test_evaluator.get('type') != 'IoUMetric':
        raise ValueError(f'{config}: test_evaluator must be one IoUMetric, got {cfg.test_evaluator}')
    cfg.test_evaluator['type'] = 'PerClassIoUMetric'
    if show_dir:
        enable_visualization(cfg, 'seg', osp.join(show_dir, mode))
        cfg.default_hooks.visualization.interval = 1  # mmseg's hook draws every 50th test image by default
    if multi_scale:
        if 'tta_pipeline' not in cfg:
            raise KeyError(f'{config}: no tta_pipeline for the multi-scale test (seg_configs/_base_/'
                           f'ade20k_ms_test.py)')
        cfg.tta_flip = bool(flip or cfg.get('tta_flip', False))
        enable_tta(cfg, 'seg')  # scales, flip and tta_mode (the multi-scale pass only) as tools/test.py --tta
    return cfg


def run_pass(cfg: Config, multi_scale: bool) -> dict:
    """One Runner.test(): its mIoU / mAcc / aAcc (percent), per-class IoU and wall time in seconds."""
    start = time.time()
    metrics = build_runner(cfg).test()
    out = {k: round(float(metrics[k]), 2) for k in ('mIoU', 'mAcc', 'aAcc')}
    if multi_scale:
        resizes = test_time_aug(cfg.tta_pipeline)['transforms'][0]
        out.update(scales=[list(t['scale']) for t in resizes], flip=cfg.tta_flip, mode=cfg.model.module.test_cfg.mode)
    return dict(out, per_class_IoU=metrics['per_class_IoU'], time=round(time.time() - start, 1))


def seg_eval(config: str, checkpoint: str, work_dir: str | None = None, flip: bool = False,
             show_dir: str | None = None, json_out: str | None = None, cfg_options: dict | None = None,
             launcher: str = 'none', single_scale: bool = False) -> dict:
    """Both passes of `checkpoint` (single_scale: the first only), written to `json_out` (default
    WORK_DIR/seg_eval.json) and returned."""
    if '://' not in checkpoint and not osp.isfile(checkpoint):
        raise FileNotFoundError(f'checkpoint {checkpoint!r} does not exist')
    results = dict(config=config, checkpoint=checkpoint)
    for mode, multi_scale in (('single_scale', False), ('multi_scale', True))[:1 if single_scale else 2]:
        cfg = build_cfg(config, checkpoint, multi_scale, work_dir, cfg_options, launcher, flip, show_dir)
        results[mode] = run_pass(cfg, multi_scale)
    json_out = json_out or osp.join(default_work_dir(config, work_dir), 'seg_eval.json')
    if get_rank() == 0:  # every rank holds the metrics (mmengine broadcasts them); one writes
        os.makedirs(osp.dirname(osp.abspath(json_out)), exist_ok=True)
        with open(json_out, 'w') as f:
            json.dump(results, f, indent=1)
        multi = '' if single_scale else f', multi-scale mIoU {results["multi_scale"]["mIoU"]:.2f}'
        print(f'seg_eval: single-scale mIoU {results["single_scale"]["mIoU"]:.2f}{multi} -> {json_out}')
    leave_process_group()
    return results
