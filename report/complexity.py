"""Params and FLOPs of a run's model, built from its config alone (no weights read), through the model's own
`mode='tensor'` forward (what mmdet/mmseg's get_flops traces), at the paper's input sizes."""
import hashlib

import torch
from mmengine.analysis import FlopAnalyzer, parameter_count
from mmengine.registry import MODELS, init_default_scope

SIZES = dict(cls=(224, 224), det=(800, 1280), seg=(512, 2048))  # (H, W): FLOPs at 224², 1280×800, 2048×512
VERSION = 'tensor-mode 1'  # part of the cache key: cached figures of another counting are not reused


class TensorForward(torch.nn.Module):
    """model(inputs, data_samples, mode='tensor') as a one-argument module, for FlopAnalyzer's trace."""

    def __init__(self, model, data_samples=None):
        super().__init__()
        self.model, self.data_samples = model, data_samples

    def forward(self, inputs):
        return self.model(inputs, self.data_samples, mode='tensor')


def det_samples(model, shape) -> list:
    """One DetDataSample of an unscaled (H, W) image; the RPN keeps exactly its test-time `max_per_img` proposals
    (NMS off while counting: on a blank image NMS would keep a data-dependent few)."""
    from mmdet.structures import DetDataSample
    rpn_cfg = getattr(getattr(model, 'rpn_head', None), 'test_cfg', None)
    if rpn_cfg is not None and 'nms' in rpn_cfg:
        rpn_cfg.nms.iou_threshold = 1.0
    meta = dict(img_shape=shape, ori_shape=shape, pad_shape=shape, batch_input_shape=shape, scale_factor=(1., 1.))
    return [DetDataSample(metainfo=meta)]


def count_flops(module, shape) -> int:
    """mmengine's FlopAnalyzer (fvcore's counting: one multiply-add = one FLOP) on one zero image of shape (H, W)."""
    with torch.no_grad():
        analyzer = FlopAnalyzer(module, (torch.zeros(1, 3, *shape),))
        analyzer.unsupported_ops_warnings(False)
        analyzer.uncalled_modules_warnings(False)
        return int(analyzer.total())


def complexity(cfg, task: str, cache: dict, flops: bool = True) -> dict:
    """dict(params, flops) of the whole model at the paper's input size for `task`; cached by the model config, so
    a repeated report costs nothing."""
    model_cfg = cfg.model.copy()
    if 'backbone' in model_cfg:
        model_cfg.backbone = dict(model_cfg.backbone, init_cfg=None)  # never read the checkpoint
    model_cfg.pop('init_cfg', None)
    key = hashlib.sha1(f'{VERSION} {task} {SIZES[task]} {sorted(model_cfg.to_dict().items())!r}'.encode()).hexdigest()
    if key in cache and (cache[key].get('flops') is not None or not flops):
        return cache[key]
    init_default_scope(cfg.get('default_scope', 'mmengine'))
    model = MODELS.build(model_cfg).eval()
    out = dict(params=int(parameter_count(model)['']), flops=None)
    if flops and task != 'fcmae':
        samples = det_samples(model, SIZES[task]) if task == 'det' else None
        out['flops'] = count_flops(TensorForward(model, samples), SIZES[task])
    cache[key] = out
    return out
