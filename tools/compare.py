"""The comparison report (issue 7): our runs beside the ConvNeXt V2 paper's ImageNet, COCO (Table 6) and ADE20K
(Table 7) numbers and the Swin/SimMIM rows, with params and FLOPs at the paper's input sizes, loss curves of every
stage, AP / mIoU bars and the FCMAE reconstructions. Toy runs and full runs alike.

    python tools/compare.py RESULTS_JSON_OR_DIRS... [--out report.md] [--plots DIR] [--no-flops]
"""
import argparse
import functools
import hashlib
import json
import os
import os.path as osp
import shutil
import sys
from pathlib import Path

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)  # configs import `backbone`, `pretrain` from the repository root

PAPER = 'ConvNeXt V2 (Woo et al., CVPR 2023, arXiv 2301.00808)'
SIZES = dict(cls=(224, 224), det=(800, 1280), seg=(512, 2048))  # (H, W): FLOPs at 224², 1280×800, 2048×512
SUP, FCMAE, SIMMIM = 'IN-1K supervised', 'FCMAE', 'SimMIM'
# Paper rows as in shared/RECIPES.md "Reference results" (paper Tables 4, 6, 7; IN-1K FT top-1 at 224).
# ImageNet: (backbone, init, params M, FLOPs G at 224, top-1); the variant table lists params with a 1k head.
PAPER_IN1K = [(f'ConvNeXt V2-{a}', FCMAE, p, f, t) for a, p, f, t in (
    ('A', 3.7, 0.55, 76.7), ('F', 5.2, 0.78, 78.5), ('P', 9.1, 1.37, 80.3), ('N', 15.6, 2.45, 81.9),
    ('T', 28.6, 4.47, 83.0), ('B', 89, 15.4, 84.9), ('L', 198, 34.4, 85.8), ('H', 660, 115, 86.3))] + [
    ('Swin-B', SIMMIM, None, None, 84.0), ('Swin-L', SIMMIM, None, None, 85.4), ('SwinV2-H', SIMMIM, None, None, 85.7)]
# COCO val2017, Mask R-CNN (Table 6): (backbone, init, APbox, APmask)
PAPER_COCO = [('ConvNeXt V1-B', SUP, 50.3, 44.9), ('ConvNeXt V2-B', SUP, 51.0, 45.6), ('Swin-B', SIMMIM, 52.3, None),
              ('ConvNeXt V2-B', FCMAE, 52.9, 46.6), ('ConvNeXt V1-L', SUP, 50.6, 45.1),
              ('ConvNeXt V2-L', SUP, 51.5, 45.8), ('Swin-L', SIMMIM, 53.8, None), ('ConvNeXt V2-L', FCMAE, 54.4, 47.7),
              ('SwinV2-H', SIMMIM, 54.4, None), ('ConvNeXt V2-H', FCMAE, 55.7, 48.9)]
# ADE20K val, UPerNet (Table 7), multi-scale mIoU only: (backbone, init, mIoU ms)
PAPER_ADE = [('ConvNeXt V1-B', SUP, 49.9), ('ConvNeXt V2-B', SUP, 50.5), ('Swin-B', SIMMIM, 52.8),
             ('ConvNeXt V2-B', FCMAE, 52.1), ('ConvNeXt V1-L', SUP, 50.5), ('ConvNeXt V2-L', SUP, 51.6),
             ('Swin-L', SIMMIM, 53.5), ('ConvNeXt V2-L', FCMAE, 53.7), ('SwinV2-H', SIMMIM, 54.2),
             ('ConvNeXt V2-H', FCMAE, 55.0)]
LETTERS = dict(atto='A', femto='F', pico='P', nano='N', tiny='T', base='B', large='L', huge='H')
SWINS = {(96, (2, 2, 6, 2)): 'Swin-T', (96, (2, 2, 18, 2)): 'Swin-S', (128, (2, 2, 18, 2)): 'Swin-B',
         (192, (2, 2, 18, 2)): 'Swin-L'}


def read_result(path: Path) -> dict | None:
    """A results JSON of tools/test.py or tools/seg_eval.py as dict(task, config, checkpoint, metrics, file);
    None for any other JSON. Metrics in percent: top1/top5, APbox/APmask, mIoU_ss/mIoU_ms."""
    if path.stat().st_size > 5e6 or 'vis_data' in path.parts:
        return None  # annotation files, mmengine's per-run logs
    try:
        res = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(res, dict) or 'checkpoint' not in res or 'config' not in res:
        return None
    out = dict(config=res['config'], checkpoint=res['checkpoint'], file=str(path), metrics={})
    if 'single_scale' in res:  # tools/seg_eval.py
        out.update(task='seg', metrics=dict(mIoU_ss=res['single_scale']['mIoU'],
                                            mIoU_ms=res.get('multi_scale', {}).get('mIoU')))
        return out
    m, task = res.get('metrics', {}), res.get('task')
    if task == 'cls':
        out['metrics'] = dict(top1=m.get('accuracy/top1'), top5=m.get('accuracy/top5'))
    elif task == 'det':  # mmdet's CocoMetric reports AP in [0, 1]; -1 when a category set is empty
        out['metrics'] = {k: 100 * m[f'coco/{n}_mAP'] if m.get(f'coco/{n}_mAP', -1) >= 0 else None
                          for k, n in (('APbox', 'bbox'), ('APmask', 'segm'))}
    elif task == 'seg':  # tools/test.py: the single-scale test, or the multi-scale one with --tta
        out['metrics'] = {'mIoU_ms' if res.get('tta') else 'mIoU_ss': m.get('mIoU')}
    else:
        return None
    out['task'] = task
    return out


def collect(paths: list) -> tuple[list, list, list]:
    """(results merged per checkpoint, work dirs holding mmengine scalars, FCMAE reconstruction PNGs) under paths."""
    files, work_dirs, grids = [], [], []
    for p in map(Path, paths):
        if not p.exists():
            raise FileNotFoundError(f'{p}: no such results JSON or directory')
        if p.is_file():
            files.append(p)
            continue
        files += sorted(p.rglob('*.json'))
        work_dirs += sorted({s.parents[2] for s in p.rglob('vis_data/scalars.json')})
        grids += sorted(p.rglob('*_fcmae.png'))
    merged = {}
    for f in files:
        res = read_result(f)
        if res is None and f in map(Path, paths):
            raise ValueError(f'{f}: not a results JSON of tools/test.py or tools/seg_eval.py (needs config, '
                             'checkpoint and task+metrics or single_scale)')
        if res is not None:
            key = (res['task'], osp.basename(res['config']), osp.abspath(res['checkpoint']))
            if key in merged:  # e.g. tools/test.py with and without --tta on one segmentation checkpoint
                merged[key]['metrics'].update({k: v for k, v in res['metrics'].items() if v is not None})
            else:
                merged[key] = res
    return list(merged.values()), work_dirs, grids


def dumped_config(work_dir) -> Path | None:
    """The config a run really used: mmengine's dump in its work dir (overrides included), newest first."""
    work_dir = Path(work_dir)
    found = sorted(work_dir.glob('*/vis_data/config.py'), reverse=True) + sorted(work_dir.glob('*.py'))
    return found[0] if found else None


@functools.lru_cache(maxsize=None)
def read_config(path: str):
    """Config.fromfile, once per file: resolving `mmdet::` bases is slow (mmengine asks pkg_resources each time)."""
    from mmengine.config import Config
    return Config.fromfile(path)


def load_config(result: dict):
    """The run's effective config: the dump next to its checkpoint, else the config file the JSON names."""
    ckpt_dir = Path(result['checkpoint']).parent
    candidates = [ckpt_dir / osp.basename(result['config']), dumped_config(ckpt_dir), Path(result['config']),
                  Path(ROOT) / result['config']]
    for path in candidates:
        if path is not None and path.is_file():
            return read_config(str(path.resolve())).copy()
    raise FileNotFoundError(f"{result['file']}: config {result['config']} not found (looked in {ckpt_dir})")


def backbone_cfg(cfg) -> dict:
    model = cfg.model
    return dict(type='ConvNeXtV2', arch=model.arch) if model.get('type') == 'FCMAE' else model.backbone


def backbone_name(cfg) -> str:
    """The paper's name of the run's backbone: ConvNeXt V2-A … -H, Swin-T/S/B/L, else its widths."""
    bb = backbone_cfg(cfg)
    if 'ConvNeXtV2' in bb.get('type', ''):
        arch = bb.get('arch', 'base')
        return f'ConvNeXt V2-{LETTERS[arch]}' if arch in LETTERS else f"ConvNeXt V2 (dims {arch['dims']})"
    if 'Swin' in bb.get('type', ''):
        embed, depths = bb.get('embed_dims', 96), tuple(bb.get('depths', (2, 2, 6, 2)))
        return SWINS.get((embed, depths), f"Swin (C={embed}, depths {'-'.join(map(str, depths))})")
    return bb.get('type', '?')


def init_name(checkpoint: str | None, depth: int = 0) -> str:
    """Where a backbone's weights came from, following our own runs' dumped configs (FCMAE → IN-1K FT)."""
    if not checkpoint:
        return 'random init'
    path = Path(checkpoint)
    config = dumped_config(path.parent) if path.parent.is_dir() and depth < 3 else None
    if config is not None:
        model = read_config(str(config.resolve())).model
        if model.get('type') == 'FCMAE':
            return 'FCMAE (ours)'
        if model.get('type') == 'ImageClassifier':
            return init_name((model.backbone.get('init_cfg') or {}).get('checkpoint'), depth + 1) + ' → IN-1K FT'
    name = path.name.lower()
    parts = ['SimMIM' if 'simmim' in name else 'FCMAE' if 'fcmae' in name else '',
             'IN-1K FT' if 'finetune' in name or '_ft' in name else '']
    return ' → '.join(p for p in parts if p) or path.name


def dense_forward(model, task: str, cfg):
    """An nn.Module running the model's test-time computation on an image tensor without post-processing:
    classifier logits; backbone (+ neck) + decode head (segmentation); backbone + FPN + RPN + RoI heads on a fixed
    number of boxes, the config's test-time proposals and detections (detection)."""
    import torch

    class Dense(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, x):
            if task == 'cls':
                return model.backbone(x)
            feats = model.backbone(x)
            feats = model.neck(feats) if getattr(model, 'with_neck', False) else feats
            if task == 'seg':
                return model.decode_head(feats)
            out, roi = [model.rpn_head(feats)], getattr(model, 'roi_head', None)
            test_cfg = cfg.model.get('test_cfg', {})
            counts = dict(bbox=test_cfg.get('rpn', {}).get('max_per_img', 1000),
                          mask=test_cfg.get('rcnn', {}).get('max_per_img', 100))
            for kind, n in counts.items():
                if roi is not None and getattr(roi, f'with_{kind}', False):
                    rois = x.new_tensor([[0, 0, 0, 224, 224]]).repeat(n, 1)  # (n, 5): batch index, x1 y1 x2 y2
                    extractor = getattr(roi, f'{kind}_roi_extractor')
                    out.append(getattr(roi, f'{kind}_head')(extractor(feats[:extractor.num_inputs], rois)))
            return out

    return Dense().eval()


def count_flops(module, shape) -> int:
    """mmengine's FlopAnalyzer (fvcore's counting: one multiply-add = one FLOP) on one zero image of shape (H, W)."""
    import torch
    from mmengine.analysis import FlopAnalyzer
    with torch.no_grad():
        analyzer = FlopAnalyzer(module, (torch.zeros(1, 3, *shape),))
        analyzer.unsupported_ops_warnings(False)
        analyzer.uncalled_modules_warnings(False)
        return int(analyzer.total())


def complexity(cfg, task: str, cache: dict, flops: bool = True) -> dict:
    """Params of the whole model and FLOPs at the paper's input size, from the config alone (no weights loaded);
    cached by the model config, so a repeated report costs nothing."""
    from mmengine.analysis import parameter_count
    from mmengine.registry import MODELS, init_default_scope
    model_cfg = cfg.model.copy()
    if 'backbone' in model_cfg:
        model_cfg.backbone = dict(model_cfg.backbone, init_cfg=None)  # never read the checkpoint
    model_cfg.pop('init_cfg', None)
    key = hashlib.sha1(f'{task} {SIZES[task]} {sorted(model_cfg.to_dict().items())!r}'.encode()).hexdigest()
    if key in cache and (cache[key].get('flops') is not None or not flops):
        return cache[key]
    init_default_scope(cfg.get('default_scope', 'mmengine'))
    model = MODELS.build(model_cfg).eval()
    out = dict(params=int(parameter_count(model)['']), flops=None)
    if flops and task != 'fcmae':
        out['flops'] = count_flops(dense_forward(model, task, cfg), SIZES[task])
    cache[key] = out
    return out


def loss_curve(work_dir) -> tuple[list, list]:
    """(iterations, losses) of a work dir's training logs; a resumed run's later log wins where iterations repeat."""
    points = {}
    for f in sorted(Path(work_dir).glob('*/vis_data/scalars.json')):
        for line in f.read_text().splitlines():
            rec = json.loads(line)
            if 'loss' in rec and 'iter' in rec:
                points[rec['iter']] = rec['loss']
    iters = sorted(points)
    return iters, [points[i] for i in iters]


def fmt(value, digits: int = 1, unit: str = '') -> str:
    return '–' if value is None else f'{value:.{digits}f}{unit}'


def size_cols(c: dict) -> list:
    flops = c.get('flops')
    return [fmt(c['params'] / 1e6, 1, 'M'), fmt(None if flops is None else flops / 1e9, 0 if (flops or 0) >= 1e11
                                                 else 1, 'G')]


def table(header: list, rows: list) -> str:
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    return '\n'.join(lines + ['| ' + ' | '.join(map(str, r)) + ' |' for r in rows])


def data_note(cfg) -> str:
    """' (toy data)' when the run's data_root was written by tools/make_toy_data.py."""
    root = cfg.get('data_root')
    return ' (toy data)' if root and (Path(root) / '.toy_data.json').is_file() else ''


def our_rows(results: list, cache: dict, flops: bool) -> dict:
    """Report rows per task from our results: (backbone, init, params, FLOPs, metrics..., source) plus bar values."""
    rows = dict(cls=[], det=[], seg=[], bars_det=[], bars_seg=[])
    for res in sorted(results, key=lambda r: (r['task'], r['file'])):
        cfg = load_config(res)
        name, init = backbone_name(cfg), init_name((backbone_cfg(cfg).get('init_cfg') or {}).get('checkpoint'))
        source = f"ours: {Path(res['file']).parent.name}{data_note(cfg)}"
        m, cols = res['metrics'], size_cols(complexity(cfg, res['task'], cache, flops))
        if res['task'] == 'cls':
            ckpt = (backbone_cfg(cfg).get('init_cfg') or {}).get('checkpoint')
            loss = loss_curve(Path(ckpt).parent)[1] if ckpt and Path(ckpt).parent.is_dir() else []
            rows['cls'].append([name, init, *cols, fmt(loss[-1] if loss else None, 4), fmt(m['top1']), source])
        elif res['task'] == 'det':
            rows['det'].append([name, init, *cols, fmt(m.get('APbox')), fmt(m.get('APmask')), source])
            rows['bars_det'].append((f'{name} {init} (ours)', m.get('APbox'), m.get('APmask')))
        else:
            rows['seg'].append([name, init, *cols, fmt(m.get('mIoU_ss')), fmt(m.get('mIoU_ms')), source])
            rows['bars_seg'].append((f'{name} {init} (ours)', m.get('mIoU_ss'), m.get('mIoU_ms')))
    return rows


def plot_losses(curves: dict, path: Path) -> None:
    """One panel per training stage: loss against iteration."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(curves), figsize=(4 * len(curves), 3), squeeze=False)
    for ax, (name, (iters, losses)) in zip(axes[0], curves.items()):
        ax.plot(iters, losses, marker='.' if len(iters) < 30 else None)
        ax.set(title=name, xlabel='iteration', ylabel='loss')
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def plot_bars(bars: list, labels: tuple, title: str, path: Path) -> None:
    """Grouped horizontal bars, one group per backbone (ours and the paper's), one bar per metric."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(bars) + 1.2))
    for j, label in enumerate(labels):
        ax.barh([i + 0.4 * j for i in range(len(bars))], [b[1 + j] or 0 for b in bars], height=0.4, label=label)
    ax.set_yticks([i + 0.2 for i in range(len(bars))], [b[0] for b in bars], fontsize=7)
    ax.invert_yaxis()
    ax.set(title=title, xlabel='%')
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def paper_rows(task: str) -> list:
    cite = 'paper Table 6' if task == 'det' else 'paper Table 7' if task == 'seg' else 'paper (IN-1K FT, 224)'
    if task == 'cls':
        return [[b, i, '–' if p is None else f'{p:g}M', '–' if f is None else f'{f:g}G', '–', fmt(t), cite]
                for b, i, p, f, t in PAPER_IN1K]
    if task == 'det':
        return [[b, i, '–', '–', fmt(box), fmt(mask), cite] for b, i, box, mask in PAPER_COCO]
    return [[b, i, '–', '–', '–', fmt(ms), cite] for b, i, ms in PAPER_ADE]


def report(results: list, work_dirs: list, grids: list, out: Path, plots: Path, flops: bool) -> str:
    """The markdown report; writes its plots (and copies the reconstruction grids) into `plots`."""
    plots.mkdir(parents=True, exist_ok=True)
    cache_file = plots / 'complexity_cache.json'
    cache = json.loads(cache_file.read_text()) if cache_file.is_file() else {}
    rows = our_rows(results, cache, flops)
    cache_file.write_text(json.dumps(cache, indent=1))
    rel = lambda p: osp.relpath(p, out.parent)  # noqa: E731  (links relative to the report)
    md = [f'# ConvNeXt V2 transfer report\n\nOur runs (`tools/compare.py` over {len(results)} results) beside the '
          f'numbers of {PAPER}, as collected in shared/RECIPES.md "Reference results". Params: the whole model '
          'built from the run\'s config; FLOPs (mmengine FlopAnalyzer, one multiply-add = one FLOP) of one '
          'image at the paper\'s sizes: 224², detection 1280×800 (backbone, FPN, RPN and the RoI heads on the '
          'config\'s 1000 proposals / 100 detections), segmentation 2048×512 (backbone and UPerHead). "random init" '
          'rows had no pre-trained checkpoint (no SimMIM weights offline) and are not comparable to the SimMIM rows.']
    sections = [
        ('ImageNet-1K: FCMAE pre-training and fine-tuning', 'cls',
         ['backbone', 'init', 'params', 'FLOPs (224²)', 'FCMAE loss (last)', 'top-1', 'source']),
        ('COCO: Mask R-CNN (paper Table 6)', 'det',
         ['backbone', 'init', 'params', 'FLOPs (1280×800)', 'APbox', 'APmask', 'source']),
        ('ADE20K: UPerNet (paper Table 7)', 'seg',
         ['backbone', 'init', 'params', 'FLOPs (2048×512)', 'mIoU (single-scale)', 'mIoU (multi-scale)', 'source'])]
    for title, task, header in sections:
        md.append(f'## {title}\n\n' + table(header, rows[task] + paper_rows(task)))
    bars = [('bars_det', [(f'{b} {i} (paper)', box, mask) for b, i, box, mask in PAPER_COCO], ('APbox', 'APmask'),
             'COCO Mask R-CNN', 'coco_ap.png'),
            ('bars_seg', [(f'{b} {i} (paper)', None, ms) for b, i, ms in PAPER_ADE], ('mIoU single', 'mIoU multi'),
             'ADE20K UPerNet', 'ade20k_miou.png')]
    md.append('## Per backbone')
    for key, paper, labels, title, name in bars:
        plot_bars(rows[key] + paper, labels, title, plots / name)
        md.append(f'![{title}]({rel(plots / name)})')
    curves = {Path(w).name: c for w in work_dirs if (c := loss_curve(w))[0]}
    if curves:
        plot_losses(curves, plots / 'loss_curves.png')
        stages = [[n, len(i), fmt(l[0], 4), fmt(l[-1], 4)] for n, (i, l) in curves.items()]
        md.append('## Training stages\n\n' + table(['stage', 'logged iterations', 'first loss', 'last loss'], stages)
                  + f'\n\n![loss curves]({rel(plots / "loss_curves.png")})')
    if grids:
        md.append('## FCMAE reconstructions\n\noriginal | masked input | reconstruction | reconstruction with the '
                  'visible patches pasted back (tools/visualize_fcmae.py)')
        for g in grids:
            shutil.copy(g, plots / g.name)
            md.append(f'![{g.stem}]({rel(plots / g.name)})')
    return '\n\n'.join(md) + '\n'


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='Markdown comparison report from results JSONs and work dirs')
    p.add_argument('inputs', nargs='+', help='results JSONs (tools/test.py, tools/seg_eval.py) or folders to search')
    p.add_argument('--out', default='report.md', help='markdown report (default report.md)')
    p.add_argument('--plots', help='folder for the PNGs and the FLOPs cache (default: <out dir>/plots)')
    p.add_argument('--no-flops', action='store_true', help='leave out FLOPs (a CPU forward per model and size)')
    return p.parse_args(argv)


def main(argv=None) -> str:
    args = parse_args(argv)
    results, work_dirs, grids = collect(args.inputs)
    if not results and not work_dirs:
        raise ValueError(f'{args.inputs}: no results JSONs and no mmengine work dirs found')
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    text = report(results, work_dirs, grids, out, Path(args.plots or out.parent / 'plots'), not args.no_flops)
    out.write_text(text)
    print(f'compare: wrote {out} ({len(results)} results, {len(work_dirs)} training logs, {len(grids)} grids)')
    return text


if __name__ == '__main__':
    main()
