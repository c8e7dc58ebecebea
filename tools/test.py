"""Evaluate a checkpoint of any stage with mmengine's Runner.test and write the metrics as JSON for the comparison
report. Shaped after mmdet/mmseg tools/test.py (--out, --show-dir, --tta)."""
import argparse
import json
import os
import os.path as osp
import sys
import time
from copy import deepcopy

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
from mmengine.config import ConfigDict, DictAction  # noqa: E402

from tools.train import build_runner, leave_process_group, load_cfg  # noqa: E402

TASKS = {'mmdet': 'det', 'mmseg': 'seg'}  # default_scope → task; anything else is classification/pretraining
VIS_HOOKS = {'det': 'DetVisualizationHook', 'seg': 'SegVisualizationHook'}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Test (and evaluate) a checkpoint of any stage')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint to evaluate (loaded as load_from)')
    parser.add_argument('--work-dir', help='where logs go (default ./work_dirs/<config name>)')
    parser.add_argument('--out', help='also dump the raw predictions to this .pkl')
    parser.add_argument('--show-dir', help='draw predictions into this folder (det: under work_dir/timestamp)')
    parser.add_argument('--tta', action='store_true', help="test-time augmentation (the config's tta_model/pipeline)")
    parser.add_argument('--json-out', help='results JSON (default <work_dir>/test_results.json)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={}, help='key=value overrides')
    parser.add_argument('--launcher', choices=['none', 'pytorch'], default='none', help='job launcher')
    return parser.parse_args(argv)


def enable_visualization(cfg, task: str, show_dir: str):
    """Turn on the task's visualisation hook the way mmdet (test_out_dir) and mmseg (visualizer.save_dir) do."""
    if task not in VIS_HOOKS:
        raise ValueError(f'--show-dir: no visualisation hook for task {task!r} (default_scope '
                         f'{cfg.get("default_scope")!r}); expected one of {sorted(TASKS)}')
    hook = cfg.default_hooks.setdefault('visualization', {})
    hook.update(type=VIS_HOOKS[task], draw=True)
    if task == 'det':
        hook['test_out_dir'] = show_dir
    else:
        cfg.visualizer['save_dir'] = show_dir


def enable_tta(cfg, task: str):
    """Wrap the model in cfg.tta_model and test with cfg.tta_pipeline; detection falls back to mmdet's flip TTA."""
    data = cfg.test_dataloader.dataset
    while 'dataset' in data:
        data = data.dataset
    if task == 'det':
        cfg.setdefault('tta_model', dict(type='DetTTAModel', tta_cfg=dict(nms=dict(type='nms', iou_threshold=0.5),
                                                                         max_per_img=100)))
        if 'tta_pipeline' not in cfg:  # mmdet's default: the test pipeline with and without a horizontal flip
            cfg.tta_pipeline = deepcopy(data.pipeline)
            cfg.tta_pipeline[-1] = dict(type='TestTimeAug', transforms=[
                [dict(type='RandomFlip', prob=1.), dict(type='RandomFlip', prob=0.)],
                [dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                                                       'scale_factor', 'flip', 'flip_direction'))]])
    missing = [k for k in ('tta_model', 'tta_pipeline') if k not in cfg]
    if missing:
        raise KeyError(f'--tta: the config defines no {" / ".join(missing)}')
    data.pipeline = cfg.tta_pipeline
    cfg.model = ConfigDict(**cfg.tta_model, module=cfg.model)


def to_json(value):
    """Metric values as plain JSON numbers (numpy scalars, tensors) or strings."""
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


def main(argv=None) -> dict:
    args = parse_args(argv)
    if '://' not in args.checkpoint and not osp.isfile(args.checkpoint):
        raise FileNotFoundError(f'checkpoint {args.checkpoint!r} does not exist')
    cfg = load_cfg(args.config, args.cfg_options, args.work_dir, args.launcher)
    cfg.load_from = args.checkpoint
    task = TASKS.get(cfg.get('default_scope'), 'cls')
    if args.show_dir:
        enable_visualization(cfg, task, args.show_dir)
    if args.tta:
        enable_tta(cfg, task)
    runner = build_runner(cfg)
    if args.out:
        if not args.out.endswith(('.pkl', '.pickle')):
            raise ValueError(f'--out {args.out}: expected a .pkl or .pickle file')
        if task == 'det':
            from mmdet.evaluation import DumpDetResults as Dump
        else:
            from mmengine.evaluator import DumpResults as Dump
        runner.test_evaluator.metrics.append(Dump(out_file_path=args.out))
    start = time.time()
    metrics = runner.test()
    result = dict(config=args.config, checkpoint=args.checkpoint, task=task, tta=args.tta, metrics=to_json(metrics),
                  time=time.strftime('%Y-%m-%dT%H:%M:%S%z'), seconds=round(time.time() - start, 3))
    if runner.rank == 0:
        path = args.json_out or osp.join(cfg.work_dir, 'test_results.json')
        os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
        with open(path, 'w') as f:
            json.dump(result, f, indent=2)
        print(f'tools/test.py: wrote {path}')
    leave_process_group()
    return result


if __name__ == '__main__':
    main()
