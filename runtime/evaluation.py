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


def multi_scale_test(cfg, test_pipeline: list) -> None:
    """The paper's multi-scale test from the run's values (seg_configs/_base_/ade20k_ms_test.py): tta_pipeline's
    resize group = tta_scales × the single-scale test Resize of `test_pipeline`, its flip group from tta_flip, and
    tta_mode ('whole' / 'slide'; None keeps it) as the model's test_cfg mode. Built here, when the test starts, so
    that --cfg-options tta_scales=... tta_flip=True tta_mode=whole reach tools/test.py --tta and tools/seg_eval.py
    alike (a config's list comprehension would have used the values of the file)."""
    scales = cfg.tta_scales
    if not isinstance(scales, (list, tuple)) or not scales or not all(
            isinstance(s, (int, float)) and s > 0 for s in scales):
        raise ValueError(f'tta_scales={scales!r}: expected a non-empty list of positive multiples of the test size')
    resizes = [t for t in test_pipeline if t.get('type') == 'Resize']
    if len(resizes) != 1 or len(resizes[0].get('scale') or ()) != 2:
        raise ValueError(f'test_dataloader.dataset.pipeline: expected one Resize with scale=(w, h) for the '
                         f'multi-scale test to multiply by tta_scales, got {resizes}')
    w, h = resizes[0]['scale']
    groups = test_time_aug(cfg.tta_pipeline)['transforms']
    groups[0] = [dict(resizes[0], scale=(int(w * s), int(h * s))) for s in scales]  # keep_ratio as the test's
    set_tta_flip(cfg.tta_pipeline, bool(cfg.get('tta_flip', False)))
    mode = cfg.get('tta_mode')
    if mode not in (None, 'whole', 'slide'):
        raise ValueError(f"tta_mode={mode!r}: expected None (the model's test_cfg), 'whole' or 'slide'")
    if mode:
        cfg.model.test_cfg['mode'] = mode


def enable_tta(cfg, task: str):
    """Wrap the model in cfg.tta_model and test with cfg.tta_pipeline, built by `multi_scale_test` where the config
    has tta_scales; detection falls back to mmdet's flip TTA."""
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
    if 'tta_scales' in cfg:
        multi_scale_test(cfg, data.pipeline)
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
