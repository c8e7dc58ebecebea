"""What every stage's inference shares: reading a checkpoint weights-only, a strict key check after mmdet's and
mmseg's inferencers (which load with strict=False), class names with their source, output paths."""
import copy
import json
import re
from pathlib import Path

from mmengine.logging import print_log

from backbone.checkpoint import CheckpointError, safe_load
from runtime import mmengine_checkpoints  # around the inferencers' own weights-only torch.load


def read_checkpoint(path: str) -> dict:
    """The checkpoint dict, weights-only, with its tensors memory-mapped (only keys and meta are read here)."""
    return safe_load(path, mmap=True)


def check_state_dict(model, ckpt: dict, path: str):
    """Every model tensor filled and nothing left over, as a CheckpointError naming the keys: mmdet's and mmseg's
    inferencers only warn on a partial load, which would give random predictions from a wrong checkpoint."""
    if not isinstance(ckpt.get('state_dict'), dict):
        raise CheckpointError(f'{path}: no state_dict (top-level keys {sorted(map(str, ckpt))[:8]}); expected a '
                              'checkpoint written by tools/train.py for this config')
    held = {re.sub(r'^module\.', '', k): v for k, v in ckpt['state_dict'].items()}
    own = model.state_dict()
    missing, extra = sorted(set(own) - set(held)), sorted(set(held) - set(own))
    shapes = [f'{k} {tuple(own[k].shape)} vs {tuple(held[k].shape)}' for k in sorted(set(own) & set(held))
              if hasattr(held[k], 'shape') and held[k].shape != own[k].shape]
    if missing or extra or shapes:
        raise CheckpointError(f'{path} does not fit the config\'s {type(model).__name__}: {_listing(missing)} '
                              f'model keys missing, {_listing(extra)} unexpected, {len(shapes)} of another shape '
                              f'(model vs checkpoint: {", ".join(shapes[:3])})')


def _listing(keys: list) -> str:
    """'N (under a.b, c.d, ...: first key, ...)': the modules a key list spans, then a few of the keys."""
    under = list(dict.fromkeys('.'.join(k.split('.')[:2]) for k in keys))
    return f'{len(keys)}' + (f' (under {", ".join(under[:8])}: {", ".join(keys[:3])}, ...)' if keys else '')


def class_names(model, ckpt: dict, test_metainfo, num_classes: int, path: str) -> list:
    """model.dataset_meta['classes'] as the inferencer set it from the checkpoint's meta.dataset_meta; without that
    meta (the inferencers then fall back to COCO / Cityscapes), the config's test dataset metainfo."""
    if not ckpt.get('meta', {}).get('dataset_meta'):
        meta = copy.deepcopy(test_metainfo())
        print_log(f'{path}: no meta.dataset_meta; class names and palette from the config\'s test dataset '
                  f'({len(meta.get("classes", ()))} classes)', logger='current', level=30)
        model.dataset_meta.update({k: meta[k] for k in ('classes', 'palette') if k in meta})
    classes = list(model.dataset_meta.get('classes') or ())
    if len(classes) != num_classes:
        raise ValueError(f'{path}: {len(classes)} class names ({classes[:4]}...) for a model predicting {num_classes} '
                         'classes; set the dataset metainfo classes in the config (--cfg-options '
                         'test_dataloader.dataset.metainfo.classes=a,b,...)')
    return classes


def mm_inferencer(inferencer_cls, datasets, cfg, checkpoint: str, device: str, num_classes) -> tuple:
    """An mmdet/mmseg inferencer on the config and checkpoint, its state dict checked strictly, the class names found:
    (inferencer, classes); `num_classes(model)` reads the model's head."""
    ckpt = read_checkpoint(checkpoint)
    with mmengine_checkpoints():
        inferencer = inferencer_cls(model=copy.deepcopy(cfg), weights=checkpoint, device=device)
    inferencer.show_progress = False  # tools/infer.py shows one bar over all inputs
    check_state_dict(inferencer.model, ckpt, checkpoint)
    test_meta = lambda: datasets.build(dict(cfg.test_dataloader.dataset, lazy_init=True)).metainfo  # noqa: E731
    return inferencer, class_names(inferencer.model, ckpt, test_meta, num_classes(inferencer.model), checkpoint)


def output_path(out_dir: Path, folder: str, name: str, suffix: str = '.png') -> Path:
    path = Path(out_dir) / folder / f'{name}{suffix}'
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def write_json(path: Path, obj) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=1) + '\n')
    return path
