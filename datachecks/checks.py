"""Pre-flight data checks: read every COCO annotation file and segmentation label map that a config trains
or validates on before any runner exists, so that bad annotations give an error naming the file, record and key, or a
named, counted skip, instead of a bare KeyError at dataset build or an IndexError in the loss mid-training.

tools/train.py calls check(cfg) before building the runner (--no-preflight skips it); `python tools/preflight.py
CONFIG` runs it alone. Other dataset types are skipped. Label-map scans (by size, mtime_ns) and COCO verdicts (by
size, mtime_ns, ctime_ns: verdicts.py) are cached in WORK_DIR/preflight_cache.json, so a resumed run rereads only the
files that changed."""
import json
import logging
import os
import os.path as osp
import sys
from concurrent.futures import ThreadPoolExecutor

from mmengine.dist import get_rank, is_distributed
from mmengine.logging import print_log
from mmengine.registry import DATASETS

from .coco import check_coco
from .found import DataError
from .segmaps import check_seg

CACHE = 'preflight_cache.json'


def leaf_datasets(node):
    """Dataset configs under RepeatDataset / ConcatDataset / ClassBalancedDataset wrappers."""
    if isinstance(node, (list, tuple)):
        for item in node:
            yield from leaf_datasets(item)
    elif isinstance(node, dict):
        inner = node.get('datasets', node.get('dataset'))
        yield from leaf_datasets(inner) if inner is not None else [node]


def lazy_dataset(ds_cfg: dict, scope):
    """('coco' | 'seg' | None, the dataset built with lazy_init: paths joined, metainfo set, nothing read)."""
    cls = ds_cfg.get('type')
    if isinstance(cls, str):
        with DATASETS.switch_scope_and_registry(ds_cfg.get('_scope_', scope)) as registry:
            cls = registry.get(cls)
    names = {c.__name__ for c in getattr(cls, '__mro__', ())}
    kind = 'coco' if 'CocoDataset' in names else 'seg' if 'BaseSegDataset' in names else None
    if kind is None:
        return None, None
    args = {k: v for k, v in ds_cfg.items() if k not in ('type', '_scope_', 'pipeline')}  # transforms: not needed
    return kind, cls(**args, lazy_init=True)


def global_rank() -> int:
    """This process's rank in the process group; before one exists, RANK (torchrun) or SLURM_PROCID (srun), else 0.
    Never LOCAL_RANK / SLURM_LOCALID: every node has a local rank 0."""
    if is_distributed():
        return get_rank()
    return int(os.environ.get('RANK', os.environ.get('SLURM_PROCID', '0')))


def usable_cpus() -> int:
    """CPUs this process may run on: its affinity mask, within a Slurm task also SLURM_CPUS_PER_TASK."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else (os.cpu_count() or 1)
    slurm = os.environ.get('SLURM_CPUS_PER_TASK', '')
    return max(1, min(cpus, int(slurm)) if slurm.isdigit() else cpus)


def with_mask(ds_cfg: dict) -> bool:
    return any(isinstance(t, dict) and str(t.get('type')).endswith('LoadAnnotations') and t.get('with_mask')
               for t in ds_cfg.get('pipeline', []))


def check(cfg, use_cache: bool = True, splits=('train', 'val')) -> dict:
    """Check the datasets of cfg's dataloaders of `splits` (training: train and val, which the runner builds);
    {split: [summary, ...]}. Skips are logged as warnings; problems raise DataError after every dataset was read.
    Only global rank 0 checks (`global_rank`), with one decoding thread per usable CPU."""
    rank, threads = global_rank(), usable_cpus()
    if rank != 0:
        return {}
    # every process that checks says so (mmengine's logger shows rank 0 only): a job counts one such line
    print(f'preflight: global rank 0 checks the {"/".join(splits)} data ({threads} threads)', file=sys.stderr,
          flush=True)
    cache_file = osp.join(cfg.work_dir, CACHE) if use_cache and cfg.get('work_dir') else None
    cache = dict(label_maps={}, coco={})
    if cache_file and osp.isfile(cache_file):
        try:
            with open(cache_file) as f:
                stored = json.load(f)
            if not all(isinstance(stored.get(k, {}), dict) for k in cache):
                raise ValueError('not a dict of files')
            cache.update({k: stored.get(k, {}) for k in cache})
        except (ValueError, AttributeError):  # not ours or damaged: rescan, and rewrite it below
            print_log(f'preflight: {cache_file} is not a cache this tool wrote; rescanning', logger='current',
                      level=logging.WARNING)
    result, problems, done = {}, [], {}
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for split in splits:
            loader = cfg.get(f'{split}_dataloader') or {}
            for ds_cfg in leaf_datasets(loader.get('dataset')):
                kind, ds = lazy_dataset(ds_cfg, cfg.get('default_scope'))
                if kind is None:
                    continue
                key = (kind, ds.ann_file, json.dumps(ds.data_prefix, sort_keys=True), ds.test_mode)
                if key not in done:
                    done[key] = (check_coco(ds, with_mask(ds_cfg), pool, cache['coco'] if cache_file else None)
                                 if kind == 'coco' else check_seg(ds, cache['label_maps'], pool))
                    summary, errors, skips = done[key]
                    if skips.kinds:
                        print_log(f'preflight: {summary["file"]}: ' + '; '.join(skips.lines()), logger='current',
                                  level=logging.WARNING)
                    if errors.kinds:
                        problems += [f'{summary["file"]}:'] + errors.block()
                result.setdefault(split, []).append(done[key][0])
    if cache_file and any(cache.values()):
        os.makedirs(cfg.work_dir, exist_ok=True)
        tmp = f'{cache_file}.tmp{os.getpid()}'
        with open(tmp, 'w') as f:
            json.dump(dict(version=2, **cache), f)
        os.replace(tmp, cache_file)
    if problems:
        raise DataError(f'preflight: the data of {getattr(cfg, "filename", "the config")} has problems (fix them, or '
                        'train anyway with --no-preflight):\n' + '\n'.join(problems))
    return result
