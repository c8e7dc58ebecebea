"""Our runs as the report reads them: the results JSONs of tools/test.py and tools/seg_eval.py, the config each run
really used (mmengine's dump in its work dir), its backbone's paper name, where its weights came from and how long
its FCMAE pre-training ran, and the training losses mmengine logged."""
import functools
import json
import os.path as osp
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]  # configs named relative to the repository root
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
                  ROOT / result['config']]
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
        if model.get('type') in ('FCMAE', 'SimMIM'):  # our own pre-training runs
            return f"{model.type} (ours)"
        if model.get('type') == 'ImageClassifier':
            return init_name((model.backbone.get('init_cfg') or {}).get('checkpoint'), depth + 1) + ' → IN-1K FT'
    name = path.name.lower()
    parts = ['SimMIM' if 'simmim' in name else 'FCMAE' if 'fcmae' in name else '',
             'IN-1K FT' if 'finetune' in name or '_ft' in name else '']
    return ' → '.join(p for p in parts if p) or path.name


def pretrain_epochs(checkpoint: str | None, depth: int = 0) -> int | None:
    """Epochs of FCMAE pre-training behind a backbone checkpoint: the epoch in mmengine's `epoch_N.pth` name, else
    the FCMAE run's dumped `train_cfg.max_epochs`, following a fine-tuning run back to its FCMAE run."""
    if not checkpoint:
        return None
    path = Path(checkpoint)
    config = dumped_config(path.parent) if path.parent.is_dir() and depth < 3 else None
    model = read_config(str(config.resolve())).model if config is not None else {}
    if model.get('type') == 'ImageClassifier':
        return pretrain_epochs((model.backbone.get('init_cfg') or {}).get('checkpoint'), depth + 1)
    if model.get('type') == 'FCMAE':
        named = re.fullmatch(r'epoch_(\d+)\.pth', path.name)
        return int(named[1]) if named else read_config(str(config.resolve())).train_cfg.get('max_epochs')
    return None


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


def data_note(cfg) -> str:
    """' (toy data)' when the run's data_root was written by toydata."""
    root = cfg.get('data_root')
    return ' (toy data)' if root and (Path(root) / '.toy_data.json').is_file() else ''
