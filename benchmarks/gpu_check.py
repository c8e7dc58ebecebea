"""The first GPU machine's check, one prepared script (benchmarks/gpu_check.sh; under 8 minutes on one GPU, nothing
downloaded), ending in one table:
  ops       mmcv's RoIAlign (forward, backward), RoIPool and nms on the device against mmcv's CPU result and
            torchvision's, and which ops the installed mmcv was built with;
  stage     each stage's training step (FCMAE, fine-tune, Mask R-CNN, UPerNet; the real configs) for 20 iterations
            in bf16 and fp16 (runtime's DeviceAmpOptimWrapper, as tools/train.py --amp-dtype), eager and under
            torch.compile as `tools/train.py --compile` runs it (benchmarks/compile_check.py): finite losses,
            ms/iteration, peak memory; compiled rows: dynamo's graphs, graph breaks, recompiles, max |Δ| vs eager;
  fcmae     FCMAE visible vs dense path, tiny at 224 px, batch 64: img/s and peak memory (benchmarks/bench_fcmae.py);
  transfer  Mask R-CNN (1024², batch 2) and UPerNet (512², batch 2) iteration time, ConvNeXt V2-T against Swin-T.
Rows that would start after --budget seconds are listed as skipped. `--dry-run`: the same code on the CPU at toy
sizes (atto, CPU-sized heads), 2 iterations, compile with the 'eager' backend (graph capture without code
generation, which takes minutes on a CPU); tests/test_gpu_check.py runs it. `--ops-only`: the ops rows (the last
step of tools/setup.sh). Exit status 1 when a check fails.

    python benchmarks/gpu_check.py [--dry-run] [--ops-only] [--budget 450] [--json-out FILE]
"""
import argparse
import glob
import json
import math
import os.path as osp
import shutil
import statistics
import subprocess
import sys
import time
from types import SimpleNamespace

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
for path in (ROOT, osp.join(ROOT, 'benchmarks')):
    if path not in sys.path:
        sys.path.insert(0, path)
import torch  # noqa: E402

GPU = dict(arch='tiny', letter='t', iters=20, sizes=dict(fcmae=(224, 32), finetune=(224, 32), det=(1024, 2),
                                                        seg=(512, 2)),
           fcmae_bench=dict(size=224, batch=64, rounds=5), transfer=dict(det=(1024, 2), seg=(512, 2), rounds=5),
           backend='inductor', classes=1000)
DRY = dict(arch='atto', letter='a', iters=2, sizes=dict(fcmae=(64, 2), finetune=(64, 2), det=(128, 2), seg=(64, 2)),
           fcmae_bench=dict(size=64, batch=2, rounds=1), transfer=dict(det=(128, 2), seg=(64, 2), rounds=1),
           backend='eager', classes=4)
CONFIGS = dict(fcmae='pretrain/configs/fcmae_cnx2_{arch}.py', finetune='pretrain/configs/finetune_cnx2_{arch}.py',
               det='det_configs/mask_rcnn_cnx2_{letter}.py', seg='seg_configs/upernet_cnx2_{letter}.py')
SWIN_T = dict(embed_dims=96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24), drop_path_rate=0.2, init_cfg=None)
SEG_PAIR = {  # UPerNet with the same heads and recipe; Swin-T as in the Swin paper (window 7), heads fitted to it
    'cnx2-t': ('seg_configs/upernet_cnx2_t.py', {'model.backbone.init_cfg': None}),
    'swin-t': ('seg_configs/upernet_swin_b_simmim.py', {
        'model.backbone': SWIN_T, 'model.decode_head.in_channels': [96, 192, 384, 768],
        'model.auxiliary_head.in_channels': 384})}


class Clock:
    """The time budget: rows that would start after it are reported as skipped."""

    def __init__(self, budget: float):
        self.start, self.budget = time.time(), budget

    def left(self) -> bool:
        return time.time() - self.start < self.budget


def row(section: str, check: str, setting: str, result: str, ok: bool | None = True, **values) -> dict:
    """One line of the table; ok None: measured, nothing to pass or fail."""
    return dict(section=section, check=check, setting=setting, result=result, ok=ok, **values)


def sync(device: str):
    if device == 'cuda':
        torch.cuda.synchronize()


def peak_mib(device: str) -> float | None:
    return torch.cuda.max_memory_allocated() / 2 ** 20 if device == 'cuda' else None


def reset_peak(device: str):
    if device == 'cuda':
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


# ---- ops -------------------------------------------------------------------------------------------------------
def built_ops() -> str:
    """What the installed mmcv holds: CUDA ops and the CUDA release it was compiled with, and the GPU
    architectures of its kernels where cuobjdump can list them."""
    from mmcv import ops
    cuda = ops.get_compiling_cuda_version()
    if cuda in ('', 'not available'):
        return 'CPU ops only (built without CUDA)'
    archs = ''
    ext = next(iter(glob.glob(osp.join(osp.dirname(ops.__file__), '..', '_ext*.so'))), None)
    if ext and shutil.which('cuobjdump'):
        listing = subprocess.run(['cuobjdump', '--list-elf', ext], capture_output=True, text=True).stdout
        archs = ', kernels for ' + ' '.join(sorted({w.split('.')[-2] for w in listing.split() if '.sm_' in w}))
    return f'CPU + CUDA ops (CUDA {cuda}, compiler {ops.get_compiler_version()}{archs})'


def ops_rows(device: str) -> list:
    """RoIAlign forward/backward, RoIPool and nms of mmcv on `device` against references on the CPU: mmcv's own
    CPU kernels (RoIAlign, nms) and torchvision's (all three; mmcv has no CPU RoIPool)."""
    import torchvision.ops as tv
    from mmcv import ops
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(2, 16, 32, 32, generator=g)
    xy = torch.rand(64, 2, generator=g) * 100
    wh = torch.rand(64, 2, generator=g) * 40 + 2
    rois = torch.cat([torch.randint(0, 2, (64, 1), generator=g).float(), xy, (xy + wh).clamp(max=127)], 1)
    rows = [row('ops', 'mmcv build', '', built_ops(), ok=True)]
    if device == 'cuda' and ops.get_compiling_cuda_version() in ('', 'not available'):
        rows[0]['ok'] = False  # a GPU is visible but mmcv cannot use it: Mask R-CNN would fail on the GPU

    def roi_align(x, r):
        x = x.detach().requires_grad_()
        out = ops.roi_align(x, r, (7, 7), 0.25, 2, 'avg', True)
        out.backward(torch.ones_like(out))
        return out.detach().cpu(), x.grad.cpu()

    def compare(check, got, refs):
        diffs = {name: (got.float() - ref.float()).abs().max().item() for name, ref in refs.items()}
        text = ', '.join(f'max|Δ| vs {name} {d:.1e}' for name, d in diffs.items())
        return row('ops', check, device, text, ok=all(d < 1e-4 for d in diffs.values()))

    try:
        out, grad = roi_align(feats.to(device), rois.to(device))
        cpu_out, cpu_grad = roi_align(feats, rois)
        tv_x = feats.clone().requires_grad_()
        tv_out = tv.roi_align(tv_x, rois, (7, 7), 0.25, 2, aligned=True)
        tv_out.backward(torch.ones_like(tv_out))
        rows.append(compare('RoIAlign forward', out, {'mmcv cpu': cpu_out, 'torchvision': tv_out.detach()}))
        rows.append(compare('RoIAlign backward', grad, {'mmcv cpu': cpu_grad, 'torchvision': tv_x.grad}))
        if device != 'cpu':  # mmcv has no CPU kernel for RoIPool
            pooled = ops.roi_pool(feats.to(device), rois.to(device), (7, 7), 0.25).cpu()
            rows.append(compare('RoIPool forward', pooled, {'torchvision': tv.roi_pool(feats, rois, (7, 7), 0.25)}))
        boxes = torch.cat([xy, xy + wh], 1)
        scores = torch.rand(64, generator=g)
        keep = ops.nms(boxes.to(device), scores.to(device), 0.5)[1].cpu()
        refs = {'mmcv cpu': ops.nms(boxes, scores, 0.5)[1], 'torchvision': tv.nms(boxes, scores, 0.5)}
        same = all(torch.equal(keep, ref) for ref in refs.values())
        rows.append(row('ops', 'nms', device, f'{len(keep)} of 64 boxes kept, same indices as mmcv cpu and '
                        f'torchvision: {same}', ok=same))
    except RuntimeError as e:  # e.g. "no kernel image is available": a wheel built for other GPUs
        rows.append(row('ops', 'mmcv ops', device, f'{type(e).__name__}: {str(e).splitlines()[0]}', ok=False))
    return rows


# ---- stages ----------------------------------------------------------------------------------------------------
def stage_cfg(stage: str, p: dict, dtype: str | None, dry: bool):
    """The stage's real config as tools/train.py loads it (--amp-dtype), with toy heads and sizes on a dry run."""
    from runtime.config import load_cfg, scale_lr
    from tools.train import parse_args
    from toyruns.stages import head_options
    config = osp.join(ROOT, CONFIGS[stage].format(**p))
    opts = []
    if stage in ('fcmae', 'finetune'):
        opts.append('optim_wrapper.accumulative_counts=1')
    if stage == 'finetune':
        opts.append(f'model.backbone.num_classes={p["classes"]}')
    if stage in ('det', 'seg'):
        opts.append('model.backbone.init_cfg=None')
        opts += head_options(stage) if dry else []
    if stage == 'seg':
        s = p['sizes']['seg'][0]
        opts.append(f'model.data_preprocessor.size=({s},{s})')
    options = parse_args(['x', '--cfg-options', *opts]).cfg_options
    cfg = load_cfg(config, options, None, 'none', amp_dtype=dtype)
    scale_lr(cfg, world_size=1)  # FCMAE / fine-tuning: lr from blr and the run's batch, as the Runner's start does
    return cfg


def build_model(cfg, device: str):
    from mmengine.registry import MODELS, init_default_scope
    init_default_scope(cfg.get('default_scope') or 'mmengine')
    model = MODELS.build(cfg.model)
    model.init_weights()
    return model.to(device).train()


def stage_batch(stage: str, size: int, batch: int, classes: int, device: str) -> dict:
    """A training batch as the stage's dataloader collates it (random pixels, labels, boxes, masks, label maps)."""
    g = torch.Generator().manual_seed(0)
    if stage in ('fcmae', 'finetune'):
        data = dict(inputs=torch.rand(batch, 3, size, size, generator=g) * 255)
        if stage == 'finetune':
            data['data_samples'] = torch.randint(0, classes, (batch,), generator=g)
        return data
    if stage == 'det':
        from mmdet.testing import demo_mm_inputs
        data = demo_mm_inputs(batch_size=batch, image_shapes=[(3, size, size)] * batch, num_items=[8] * batch,
                              num_classes=80, with_mask=True)
        for sample in data['data_samples']:  # a tuple, as mmdet's Resize writes it (demo: an ndarray, which
            sample.set_metainfo(dict(scale_factor=(1.0, 1.0)))  # dynamo traces as a tensor it cannot deepcopy)
        return data
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    samples = []
    for _ in range(batch):
        sample = SegDataSample(gt_sem_seg=PixelData(data=torch.randint(0, 150, (1, size, size), generator=g)))
        sample.set_metainfo(dict(img_shape=(size, size), ori_shape=(size, size), pad_shape=(size, size)))
        samples.append(sample)
    return dict(inputs=[torch.randint(0, 256, (3, size, size), generator=g, dtype=torch.uint8)
                        for _ in range(batch)], data_samples=samples)


def run_stage(stage: str, dtype: str | None, compiled: bool, p: dict, device: str, dry: bool) -> dict:
    """`iters` training steps through model.train_step and the config's optimizer wrapper; compiled: as a
    `tools/train.py --compile` run (runtime.launch): cfg.compile with p's backend, the optimizer step kept eager
    (runtime.eager_optimizer_step), train_step wrapped in torch.compile as mmengine's Runner._maybe_compile does.
    dtype None: the config's own precision (float32 on a CPU). Compiled rows count dynamo's graphs, graph breaks
    and recompiles."""
    from mmengine.optim import build_optim_wrapper
    from runtime import eager_optimizer_step
    from torch._dynamo.utils import counters
    size, batch = p['sizes'][stage]
    torch.manual_seed(0)
    cfg = stage_cfg(stage, p, dtype, dry)
    if compiled:
        cfg.compile = dict(backend=p['backend'])
        eager_optimizer_step(cfg)
    model = build_model(cfg, device)
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    if compiled:
        torch._dynamo.reset()
        counters.clear()
        model.train_step = torch.compile(model.train_step, **cfg.compile)  # mmengine's Runner._maybe_compile
    data = stage_batch(stage, size, batch, p['classes'], device)
    losses, times, graphs = [], [], []
    reset_peak(device)
    for _ in range(p['iters']):
        sync(device)
        start = time.perf_counter()
        losses.append(float(model.train_step(data, wrapper)['loss']))
        sync(device)
        times.append(time.perf_counter() - start)
        graphs.append(counters['stats']['unique_graphs'])  # graphs after the first step: recompiles
    finite = all(map(math.isfinite, losses))
    ms = 1000 * statistics.median(times[min(2, len(times) - 1):])  # after the first (compiling) iterations
    mem = peak_mib(device)
    setting = f'{p["arch"]} {size}px batch {batch} {dtype or "float32"}{" compile" if compiled else ""}'
    dynamo = dict(graphs=graphs[-1], graph_breaks=sum(counters['graph_break'].values()),
                  recompiles=graphs[-1] - graphs[0]) if compiled else {}
    result = (f'loss {losses[0]:.4g} -> {losses[-1]:.4g}, {ms:.0f} ms/it, first {1000 * times[0]:.0f} ms'
              + (f', peak {mem:.0f} MiB' if mem else '')
              + (', {graphs} graphs, {graph_breaks} graph breaks, {recompiles} recompiles'.format(**dynamo)
                 if compiled else ''))
    return row('stage', stage, setting, result, ok=finite, losses=losses, ms=ms, peak_mib=mem,
               seconds=sum(times), **dynamo)


# ---- FCMAE visible vs dense ------------------------------------------------------------------------------------
def fcmae_rows(p: dict, device: str) -> list:
    """Training steps of both FCMAE paths (bench_fcmae's model, batches and step), fp32 and bf16 autocast."""
    import bench_fcmae
    q = p['fcmae_bench']
    args = SimpleNamespace(arch=p['arch'], mask_ratio=0.6, device=device, batch=q['batch'], size=q['size'])
    rows = []
    for dtype in (None, torch.bfloat16):
        speed = {}
        for path in bench_fcmae.PATHS:
            model, optimizer = bench_fcmae.build(args, path)
            imgs, mask = bench_fcmae.batch(args, model, 0)
            with torch.autocast(device, dtype=dtype or torch.bfloat16, enabled=dtype is not None):
                bench_fcmae.step(model, optimizer, imgs, mask)  # warm-up; allocates the AdamW state
                reset_peak(device)
                times = []
                for _ in range(q['rounds']):
                    sync(device)
                    start = time.perf_counter()
                    loss = bench_fcmae.step(model, optimizer, imgs, mask)
                    times.append(time.perf_counter() - start)
            speed[path] = q['batch'] / statistics.median(times)
            mem = peak_mib(device)
            name = 'fp32' if dtype is None else 'bf16'
            rows.append(row('fcmae', f'{path} path', f'{p["arch"]} {q["size"]}px batch {q["batch"]} {name}',
                            f'{speed[path]:.1f} img/s' + (f', peak {mem:.0f} MiB' if mem else ''),
                            ok=math.isfinite(loss), img_s=speed[path], peak_mib=mem))
            del model, optimizer
        rows.append(row('fcmae', 'visible / dense', name, f'{speed["visible"] / speed["dense"]:.2f}x img/s', ok=None))
    return rows


# ---- Mask R-CNN and UPerNet against Swin-T ---------------------------------------------------------------------
def transfer_rows(p: dict, device: str) -> list:
    """ms per training iteration of ConvNeXt V2-T and Swin-T in the same Mask R-CNN / UPerNet, alternating
    (benchmarks/bench_det.py's models and step; the configs' optimizer wrapper: fp16 AMP on a GPU)."""
    import bench_det
    from mmengine.config import Config
    from mmengine.optim import build_optim_wrapper
    rows = []
    pairs = dict(det={n: (osp.join('det_configs', c), o) for n, (c, o) in bench_det.MODELS.items()}, seg=SEG_PAIR)
    for task, pair in pairs.items():
        size, batch = p['transfer'][task]
        runs = {}
        for name, (config, overrides) in pair.items():
            cfg = Config.fromfile(osp.join(ROOT, config))
            cfg.merge_from_dict(dict(overrides, **({'model.data_preprocessor.size': (size, size)}
                                                   if task == 'seg' else {})))
            torch.manual_seed(0)
            model = build_model(cfg, device)
            packed = stage_batch(task, size, batch, 0, device)
            runs[name] = (model, build_optim_wrapper(model, cfg.optim_wrapper), model.data_preprocessor(packed, True))
        times = {name: [] for name in runs}
        for i in range(1 + p['transfer']['rounds']):
            for name, run in (runs.items() if i % 2 else reversed(runs.items())):
                seconds = bench_det.step(*run)
                if i:
                    times[name].append(seconds)
        ms = {name: 1000 * statistics.median(t) for name, t in times.items()}
        model = 'Mask R-CNN' if task == 'det' else 'UPerNet'
        for name in ms:
            rows.append(row('transfer', f'{model} {name}', f'{size}px batch {batch}', f'{ms[name]:.0f} ms/it',
                            ok=None, ms=ms[name]))
        rows.append(row('transfer', f'{model} cnx2-t / swin-t', '', f'{ms["cnx2-t"] / ms["swin-t"]:.2f}x', ok=None))
        del runs
    return rows


def print_table(rows: list):
    widths = [max(len(str(r[k])) for r in rows) for k in ('section', 'check', 'setting')]
    for r in rows:
        mark = {True: 'ok', False: 'FAIL', None: '--'}[r['ok']]
        print(f'{r["section"]:{widths[0]}}  {r["check"]:{widths[1]}}  {r["setting"]:{widths[2]}}  {mark:4}  '
              f'{r["result"]}')


def main(argv=None) -> list:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--dry-run', action='store_true', help='the same code on the CPU, toy sizes, 2 iterations')
    parser.add_argument('--ops-only', action='store_true', help="mmcv's ops only (tools/setup.sh's last step)")
    parser.add_argument('--budget', type=float, default=450, help='seconds after which no further row starts')
    parser.add_argument('--json-out', help='also write the rows as JSON')
    args = parser.parse_args(argv)
    device = 'cuda' if torch.cuda.is_available() and not args.dry_run else 'cpu'
    p = DRY if args.dry_run or device == 'cpu' else GPU
    clock = Clock(args.budget)
    where = torch.cuda.get_device_name() if device == 'cuda' else f'CPU, {torch.get_num_threads()} threads'
    print(f'gpu_check on {where}: torch {torch.__version__}, {"dry run" if args.dry_run else "full"}', flush=True)
    rows = ops_rows(device)
    if not args.ops_only:
        import backbone  # noqa: F401  (registers ConvNeXtV2 in the registries the configs build from)
        import runtime  # noqa: F401  (DeviceAmpOptimWrapper)
        from mmengine.logging import MMLogger
        MMLogger.get_instance('gpu_check', log_level='WARNING')  # the current logger: no per-parameter log lines
        jobs = [(run_stage, (s, d, False, p, device, args.dry_run)) for s in CONFIGS for d in ('bfloat16', 'float16')]
        jobs += [(fcmae_rows, (p, device)), (transfer_rows, (p, device))]
        jobs += [(run_stage, (s, d, True, p, device, args.dry_run)) for s in CONFIGS for d in ('bfloat16', 'float16')]
        stop = None
        for fn, fn_args in jobs:
            name = f'{fn.__name__}{fn_args[:3] if fn is run_stage else ""}'
            if stop or not clock.left():
                rows.append(row('skipped', name, '', stop or f'budget of {args.budget:.0f} s spent', ok=None))
                continue
            try:
                out = fn(*fn_args)
            except KeyboardInterrupt:  # gpu_check.sh's time limit: report what finished
                out, stop = row('skipped', name, '', 'interrupted', ok=None), 'interrupted'
            except Exception as e:  # one failing row must not hide the others' results
                out = row('error', name, '', f'{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ""}',
                          ok=False)
            out = out if isinstance(out, list) else [out]
            if fn is run_stage and fn_args[2] and 'losses' in out[0]:  # the same stage and dtype, eager
                eager = next((r for r in rows if r.get('setting') == out[0]['setting'].removesuffix(' compile')
                              and r['check'] == out[0]['check'] and 'losses' in r), None)
                if eager:
                    out[0]['diff'] = max(abs(a - b) for a, b in zip(eager['losses'], out[0]['losses']))
                    out[0]['result'] += f', max|Δ| vs eager {out[0]["diff"]:.1e}'
            rows += out
            print(f'[{time.time() - clock.start:4.0f} s] ' + '\n         '.join(
                f'{r["check"]} {r["setting"]}: {r["result"]}' for r in out), flush=True)
    print()
    print_table(rows)
    if args.json_out:
        with open(args.json_out, 'w') as f:
            json.dump(rows, f, indent=1)
    failed = [r for r in rows if r['ok'] is False]
    print(f'\n{len(failed)} failed of {sum(r["ok"] is not None for r in rows)} checks; '
          f'{time.time() - clock.start:.0f} s')
    if failed:
        sys.exit(1)
    return rows


if __name__ == '__main__':
    main()
