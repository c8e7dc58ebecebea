"""ADE20K evaluation in one go (paper A.4): the single-scale sliding-window test and the multi-scale test, written to
one JSON with mIoU / mAcc / aAcc and the per-class IoU of each.

    python tools/seg_eval.py CONFIG CKPT [--work-dir D] [--flip] [--show-dir D] [--json-out F] [--cfg-options ...]

On several GPUs: torchrun --nproc_per_node GPUS tools/seg_eval.py ... --launcher pytorch (PYTHONPATH=repo root), or
the multi-scale test alone through tools/test.py: tools/dist_test.sh CONFIG CKPT GPUS --tta.
"""
import argparse
import json
import math
import os
import os.path as osp
import sys
import time
from datetime import datetime

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)  # configs import the `backbone` package from the repository root

from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.dist import get_rank  # noqa: E402
from mmseg.evaluation import IoUMetric  # noqa: E402
from mmseg.registry import METRICS  # noqa: E402

from tools.test import enable_tta, enable_visualization  # noqa: E402
from tools.train import build_runner, leave_process_group, load_cfg  # noqa: E402


@METRICS.register_module(force=True)  # force: tests import this module more than once
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


def test_time_aug(pipeline: list) -> dict:
    """The one TestTimeAug transform of a tta_pipeline: transforms = [[resizes], [flips], [load gt], [pack]]."""
    tta = [t for t in pipeline if t.get('type') == 'TestTimeAug']
    if len(tta) != 1 or not any(group and group[0].get('type') == 'RandomFlip' for group in tta[0]['transforms']):
        raise ValueError('tta_pipeline: expected one TestTimeAug transform with a group of RandomFlip transforms')
    return tta[0]


def set_tta_flip(pipeline: list, flip: bool) -> None:
    """Make the TestTimeAug flip group [no flip] or [no flip, horizontal flip] (mmseg's two-transform form)."""
    for group in test_time_aug(pipeline)['transforms']:
        if group[0].get('type') == 'RandomFlip':
            group[:] = [dict(type='RandomFlip', prob=p, direction='horizontal') for p in ((0., 1.) if flip else (0.,))]


def work_dir(args) -> str:
    return args.work_dir or osp.join('work_dirs', osp.splitext(osp.basename(args.config))[0])


def build_cfg(args, multi_scale: bool) -> Config:
    """The config of one pass: the config's own test (single scale) or its tta_pipeline under its tta_model."""
    mode = 'multi_scale' if multi_scale else 'single_scale'
    cfg = load_cfg(args.config, args.cfg_options, osp.join(work_dir(args), mode), args.launcher)
    # a name of its own per pass: mmengine keeps one logger and one visualizer (save_dir) per experiment name
    cfg.experiment_name = f'{osp.basename(args.config)[:-3]}_{mode}_{datetime.now():%Y%m%d_%H%M%S_%f}'
    cfg.visualizer['name'] = cfg.experiment_name  # mmseg's runtime names it 'visualizer' for every run
    cfg.load_from = args.checkpoint
    if not isinstance(cfg.test_evaluator, dict) or cfg.test_evaluator.get('type') != 'IoUMetric':
        raise ValueError(f'{args.config}: test_evaluator must be one IoUMetric, got {cfg.test_evaluator}')
    cfg.test_evaluator['type'] = 'PerClassIoUMetric'
    if args.show_dir:
        enable_visualization(cfg, 'seg', osp.join(args.show_dir, mode))
        cfg.default_hooks.visualization.interval = 1  # mmseg's hook draws every 50th test image by default
    if multi_scale:
        if 'tta_pipeline' not in cfg:
            raise KeyError(f'{args.config}: no tta_pipeline for the multi-scale test (seg_configs/_base_/'
                           f'ade20k_ms_test.py)')
        cfg.tta_flip = bool(args.flip or cfg.get('tta_flip', False))
        set_tta_flip(cfg.tta_pipeline, cfg.tta_flip)
        enable_tta(cfg, 'seg')
    return cfg


def run_pass(args, multi_scale: bool) -> dict:
    """One Runner.test(): its mIoU / mAcc / aAcc (percent), per-class IoU and wall time in seconds."""
    start, cfg = time.time(), build_cfg(args, multi_scale)
    metrics = build_runner(cfg).test()
    out = {k: round(float(metrics[k]), 2) for k in ('mIoU', 'mAcc', 'aAcc')}
    if multi_scale:
        resizes = test_time_aug(cfg.tta_pipeline)['transforms'][0]
        out.update(scales=[list(t['scale']) for t in resizes], flip=cfg.tta_flip)
    return dict(out, per_class_IoU=metrics['per_class_IoU'], time=round(time.time() - start, 1))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='ADE20K single- and multi-scale evaluation of a segmentation checkpoint')
    p.add_argument('config')
    p.add_argument('checkpoint')
    p.add_argument('--work-dir', help='logs go to WORK_DIR/{single,multi}_scale (default work_dirs/CONFIG_NAME)')
    p.add_argument('--flip', action='store_true', help='add horizontal flips to the multi-scale test')
    p.add_argument('--show-dir', help='save painted predictions to SHOW_DIR/{single,multi}_scale')
    p.add_argument('--json-out', help='results JSON (default WORK_DIR/seg_eval.json)')
    p.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                   help='key=value overrides; data_root=PATH re-points the datasets (tools/train.py)')
    p.add_argument('--launcher', choices=['none', 'pytorch'], default='none', help='job launcher')
    return p.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    if '://' not in args.checkpoint and not osp.isfile(args.checkpoint):
        raise FileNotFoundError(f'checkpoint {args.checkpoint!r} does not exist')
    results = dict(config=args.config, checkpoint=args.checkpoint)
    results['single_scale'] = run_pass(args, multi_scale=False)
    results['multi_scale'] = run_pass(args, multi_scale=True)
    json_out = args.json_out or osp.join(work_dir(args), 'seg_eval.json')
    if get_rank() == 0:  # every rank holds the metrics (mmengine broadcasts them); one writes
        os.makedirs(osp.dirname(osp.abspath(json_out)), exist_ok=True)
        with open(json_out, 'w') as f:
            json.dump(results, f, indent=1)
        print(f'seg_eval: single-scale mIoU {results["single_scale"]["mIoU"]:.2f}, multi-scale mIoU '
              f'{results["multi_scale"]["mIoU"]:.2f} -> {json_out}')
    leave_process_group()
    return results


if __name__ == '__main__':
    main()
