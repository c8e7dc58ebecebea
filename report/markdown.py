"""The markdown report: our rows beside the paper's ImageNet, COCO (Table 6) and ADE20K (Table 7) numbers, plots,
the training stages and the FCMAE reconstruction grids."""
import json
import os.path as osp
import shutil
from pathlib import Path

from .ablation import plot_table, table_markdown
from .complexity import complexity
from .paper import LENGTHS, PAPER, PAPER_ADE, PAPER_COCO, fmt, paper_rows, paper_top1
from .plots import plot_bars, plot_losses
from .toy_study import learn_table, plot_transfer, transfer_table
from .results import (backbone_cfg, backbone_name, collect, data_note, init_name, load_config, loss_curve,
                      pretrain_epochs)

CLS_OURS = ['backbone', 'init', 'params', 'FLOPs (224²)', 'FCMAE loss (last)', 'top-1', 'source', 'FCMAE epochs',
            'paper top-1 after as many FCMAE epochs']
CLS_PAPER = ['backbone', 'init', 'params', 'FLOPs (224²)', 'FCMAE loss (last)',
             *[f'top-1, {n}-ep FCMAE' + (' (Table 4)' if n == 800 else '') for n in LENGTHS], 'source']


def size_cols(c: dict) -> list:
    flops = c.get('flops')
    return [fmt(c['params'] / 1e6, 1, 'M'), fmt(None if flops is None else flops / 1e9, 0 if (flops or 0) >= 1e11
                                                 else 1, 'G')]


def table(header: list, rows: list) -> str:
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    return '\n'.join(lines + ['| ' + ' | '.join(map(str, r)) + ' |' for r in rows])


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
            epochs = pretrain_epochs(ckpt)  # the paper column of the run's own pre-training length
            rows['cls'].append([name, init, *cols, fmt(loss[-1] if loss else None, 4), fmt(m['top1']), source,
                                epochs or '–', fmt(paper_top1(name, epochs))])
        elif res['task'] == 'det':
            rows['det'].append([name, init, *cols, fmt(m.get('APbox')), fmt(m.get('APmask')), source])
            rows['bars_det'].append((f'{name} {init} (ours)', m.get('APbox'), m.get('APmask')))
        else:
            rows['seg'].append([name, init, *cols, fmt(m.get('mIoU_ss')), fmt(m.get('mIoU_ms')), source])
            rows['bars_seg'].append((f'{name} {init} (ours)', m.get('mIoU_ss'), m.get('mIoU_ms')))
    return rows


def report(results: list, work_dirs: list, grids: list, out: Path, plots: Path, flops: bool) -> str:
    """The markdown report; writes its plots (and copies the reconstruction grids) into `plots`."""
    plots.mkdir(parents=True, exist_ok=True)
    cache_file = plots / 'complexity_cache.json'
    cache = json.loads(cache_file.read_text()) if cache_file.is_file() else {}
    rows = our_rows(results, cache, flops)
    cache_file.write_text(json.dumps(cache, indent=1))
    rel = lambda p: osp.relpath(p, out.parent)  # noqa: E731  (links relative to the report)
    md = [f'# ConvNeXt V2 transfer report\n\nOur runs (`tools/compare.py` over {len(results)} results) beside the '
          f'numbers of {PAPER}, as collected in docs/RECIPES.md "Reference results". Params: the whole model '
          'built from the run\'s config; FLOPs (mmengine FlopAnalyzer, one multiply-add = one FLOP) of the model\'s '
          'own `mode=\'tensor\'` forward on one image at the paper\'s sizes: 224², detection 1280×800 '
          '(backbone, FPN, RPN and the RoI heads on the config\'s 1000 proposals, masks of 100), segmentation '
          '2048×512 (backbone and UPerHead). ImageNet runs are compared with the paper column of their own FCMAE '
          'pre-training length (800 epochs: Table 4; 1600: the final results). "random init" rows had no '
          'pre-trained checkpoint (no SimMIM weights offline) and are not comparable to the SimMIM rows.']
    md.append('## ImageNet-1K: FCMAE pre-training and fine-tuning\n\n' + table(CLS_OURS, rows['cls']) + '\n\n'
              + table(CLS_PAPER, paper_rows('cls')))
    sections = [
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


def write_report(inputs: list, out, plots=None, flops: bool = True) -> str:
    """Collect results and work dirs under `inputs`, write the markdown report to `out` (plots into `plots`,
    default <out dir>/plots); its text."""
    studies = find_studies(inputs)
    runs = [p for p in inputs if Path(p) not in studies]
    results, work_dirs, grids = collect(runs) if runs else ([], [], [])
    if not results and not work_dirs and not studies:
        raise ValueError(f'{inputs}: no results JSONs, toy studies or mmengine work dirs found')
    out, plots = Path(out), Path(plots or Path(out).parent / 'plots')
    out.parent.mkdir(parents=True, exist_ok=True)
    text = report(results, work_dirs, grids, out, plots, flops) if results or work_dirs else \
        '# ConvNeXt V2 toy studies\n'
    for path, summary in studies.items():
        text += '\n' + study_section(path, summary, out, plots)
    out.write_text(text)
    print(f'compare: wrote {out} ({len(results)} results, {len(work_dirs)} training logs, {len(grids)} grids, '
          f'{len(studies)} toy studies)')
    return text


def find_studies(inputs: list) -> dict:
    """{path: summary} of the toy studies' JSONs (toyruns.study: learn.json, transfer.json) given or in folders."""
    found = {}
    for p in map(Path, inputs):
        for f in [p] if p.is_file() else sorted(p.glob('*.json')) if p.is_dir() else []:
            try:
                summary = json.loads(f.read_text()) if f.suffix == '.json' and f.stat().st_size < 5e6 else None
            except (UnicodeDecodeError, json.JSONDecodeError):
                continue
            if isinstance(summary, dict) and (('table' in summary or 'passed' in summary) and 'times' in summary
                                              or 'kendall_tau' in summary):  # benchmarks/ablations.py
                found[f] = summary
    return found


def study_section(path: Path, summary: dict, out: Path, plots: Path) -> str:
    """A toy study as markdown: the learned levels, or FCMAE vs random init with its plot."""
    if 'kendall_tau' in summary:  # a paper ablation table on toy data (benchmarks/ablations.py)
        plots.mkdir(parents=True, exist_ok=True)
        png = plots / f'{path.stem}.png'
        plot_table(summary, png)
        return (f"## Ablation `{summary['table']}` (toy data, `{path.name}`; paper: {summary['where']})\n\n"
                f'{table_markdown(summary)}\n![{summary["table"]}]({osp.relpath(png, out.parent)})\n')
    if 'passed' in summary:
        return f'## Each stage learns (toy data, `{path.name}`)\n\n{learn_table(summary)}\n'
    plots.mkdir(parents=True, exist_ok=True)
    png = plots / f'{path.stem}.png'
    plot_transfer(summary, png)
    return (f'## FCMAE vs random init (toy data, `{path.name}`)\n\n{transfer_table(summary)}\n\n'
            f'![FCMAE vs random init]({osp.relpath(png, out.parent)})\n')
