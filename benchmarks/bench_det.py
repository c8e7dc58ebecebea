"""One Mask R-CNN training iteration (forward, backward, AdamW step) with ConvNeXt V2-T against Swin-T on the same
images, alternating in one run so both see the same machine load. Prints ms/iteration and the ratio (goal ≤ 1.0×,
as ConvNeXt V2-T's FLOPs suggest). Usage: python benchmarks/bench_det.py [--size 512 --batch 2 --rounds 5]"""
import argparse
import os.path as osp
import statistics
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)
import torch  # noqa: E402
from mmengine.config import Config  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402

# both from det_configs/, with the same neck, heads and optimizer recipe; Swin-T as in the Swin paper (window 7)
MODELS = {
    'cnx2-t': ('mask_rcnn_cnx2_t.py', {'model.backbone.init_cfg': None}),
    'swin-t': ('mask_rcnn_swin_b_simmim.py', {
        'model.backbone': dict(embed_dims=96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24), drop_path_rate=0.2,
                               init_cfg=None),
        'model.neck.in_channels': [96, 192, 384, 768]}),
}


def build(config: str, overrides: dict, device: str):
    """Detector and optimizer wrapper exactly as the config builds them (AdamW, layer decay / Swin no-decay keys)."""
    from mmdet.registry import MODELS as DET_MODELS
    from mmengine.optim import build_optim_wrapper
    cfg = Config.fromfile(osp.join(ROOT, 'det_configs', config))
    cfg.merge_from_dict(overrides)
    init_default_scope('mmdet')
    model = DET_MODELS.build(cfg.model).to(device).train()
    optim_cfg = dict(cfg.optim_wrapper, type='AmpOptimWrapper' if device == 'cuda' else 'OptimWrapper')
    return model, build_optim_wrapper(model, optim_cfg)


def step(model, optim_wrapper, data) -> float:
    """Seconds for one training iteration, synchronised on the GPU."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    with optim_wrapper.optim_context(model):
        losses = model(**data, mode='loss')
    loss, _ = model.parse_losses(losses)
    optim_wrapper.update_params(loss)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--size', type=int, default=512, help='square image side')
    parser.add_argument('--batch', type=int, default=2)
    parser.add_argument('--rounds', type=int, default=5, help='timed iterations per model (alternating)')
    parser.add_argument('--warmup', type=int, default=2)
    args = parser.parse_args(argv)
    from mmdet.testing import demo_mm_inputs
    from mmengine.logging import MMLogger
    MMLogger.get_instance('bench_det', log_level='WARNING')  # the current logger: no per-parameter optimizer log
    device = 'cuda' if torch.cuda.is_available() else 'cpu'
    torch.manual_seed(0)
    packed = demo_mm_inputs(batch_size=args.batch, image_shapes=[(3, args.size, args.size)] * args.batch,
                            num_items=[8] * args.batch, num_classes=80, with_mask=True)
    runs = {}
    for name, (config, overrides) in MODELS.items():
        model, optim_wrapper = build(config, overrides, device)
        runs[name] = (model, optim_wrapper, model.data_preprocessor(packed, True))  # same images, same boxes
    times = {name: [] for name in runs}
    for i in range(args.warmup + args.rounds):
        for name, run in (runs.items() if i % 2 == 0 else reversed(runs.items())):  # alternate who goes first
            seconds = step(*run)
            if i >= args.warmup:
                times[name].append(seconds)
    ms = {name: 1000 * statistics.median(t) for name, t in times.items()}
    where = torch.cuda.get_device_name() + ' (AMP)' if device == 'cuda' else f'CPU, {torch.get_num_threads()} threads'
    print(f'Mask R-CNN train iteration, {args.batch} x {args.size}x{args.size}, {where}, median of {args.rounds}:')
    for name in ms:
        print(f'  {name}: {ms[name]:.1f} ms/iter  (all: {", ".join(f"{1000 * t:.0f}" for t in times[name])})')
    print(f'  ratio cnx2-t / swin-t = {ms["cnx2-t"] / ms["swin-t"]:.2f}x  (goal <= 1.0x)')
    return ms


if __name__ == '__main__':
    main()
