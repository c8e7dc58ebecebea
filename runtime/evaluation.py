"""Test-time settings shared by tools/test.py and tools/seg_eval.py: the task of a config, mmdet/mmseg visualisation,
test-time augmentation, prediction dumps and metrics as plain JSON."""
from copy import deepcopy

from mmengine.config import ConfigDict

TASKS = {'mmdet': 'det', 'mmseg': 'seg'}  # default_scope → task; anything else is classification/pretraining
VIS_HOOKS = {'det': 'DetVisualizationHook', 'seg': 'SegVisualizationHook'}


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


def add_dump(runner, task: str, out: str):
    """Also dump the raw predictions to `out` (.pkl), with mmdet's dumper for detection."""
    if not out.endswith(('.pkl', '.pickle')):
        raise ValueError(f'--out {out}: expected a .pkl or .pickle file')
    if task == 'det':
        from mmdet.evaluation import DumpDetResults as Dump  # mmdet only for detection configs
    else:
        from mmengine.evaluator import DumpResults as Dump
    runner.test_evaluator.metrics.append(Dump(out_file_path=out))


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
