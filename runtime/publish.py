"""Published checkpoints: a training checkpoint reduced to what inference needs, `state_dict` (the EMA weights where
the run has EMA: mmengine's EMAHook swaps them in when it saves) and a plain `meta` (dataset_meta, the config's name,
epoch, iter), written as `<name>-<sha256[:8]>.pth` the way mmdet's tools/model_converters/publish_model.py names
files. The stock mm APIs (DetInferencer, MMSegInferencer, mmengine's load_checkpoint) read it with torch's default
weights_only=True, which refuses a training checkpoint (message hub, optimizer and resume state)."""
import hashlib
import io
import os
import os.path as osp
import pickle
import re

import torch
from mmengine.dist import master_only
from mmengine.hooks import CheckpointHook, Hook
from mmengine.logging import print_log

from backbone.checkpoint import CheckpointError, safe_load

from .atomic import POINTER, publish

META_KEYS = ('config', 'dataset_meta', 'epoch', 'iter', 'mmengine_version')  # what a published meta keeps


def config_name(meta: dict) -> str | None:
    """The config's file name a checkpoint came from: meta['config'] (published) or mmengine's experiment_name
    (`<config name>_<YYYYmmdd_HHMMSS>`)."""
    if meta.get('config'):
        return meta['config']
    m = re.fullmatch(r'(.+)_\d{8}_\d{6}', str(meta.get('experiment_name', '')))
    return f'{m[1]}.py' if m else None


def weights_only(ckpt: dict, path, config: str | None = None) -> dict:
    """The published form of a checkpoint dict read from `path`: its state_dict and META_KEYS of its meta."""
    sd = ckpt.get('state_dict')
    if not isinstance(sd, dict) or not sd:
        raise CheckpointError(f'{path}: no state_dict (top-level keys: {sorted(map(str, ckpt))[:8]}); expected a '
                              'checkpoint that mmengine wrote (tools/train.py), which keeps the weights there')
    not_tensors = [k for k, v in sd.items() if not isinstance(v, torch.Tensor)]
    if not_tensors:
        raise CheckpointError(f'{path}: state_dict entries that are not tensors: {not_tensors[:5]}')
    meta = dict(ckpt.get('meta') or {})
    meta['config'] = config or config_name(meta)
    return dict(state_dict=sd, meta={k: meta[k] for k in META_KEYS if meta.get(k) is not None})


def write_published(obj: dict, stem: str) -> str:
    """torch.save `obj` to `<stem>-<sha256[:8]>.pth`: serialised in memory (so equal content gives equal bytes and
    name; a file's zip records would carry its name), read back with weights_only=True (so the stock loaders accept
    it), then written to a temporary file, fsynced and renamed; returns the path."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    data = buffer.getvalue()
    try:
        torch.load(io.BytesIO(data), map_location='cpu', weights_only=True)
    except pickle.UnpicklingError as e:
        why = ' '.join(str(e).split())[:300]
        raise CheckpointError(f'{stem}: the published dict does not load with weights_only=True, which the stock mm '
                              f'loaders use ({why}); its meta must hold plain values only') from None
    sha8 = hashlib.sha256(data).hexdigest()[:8]
    path = f'{stem}.pth' if stem.endswith(f'-{sha8}') else f'{stem}-{sha8}.pth'  # a published file: itself
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    tmp = osp.join(osp.dirname(osp.abspath(path)), f'.{osp.basename(path)}.tmp{os.getpid()}')
    try:
        with open(tmp, 'wb') as f:
            f.write(data)
        publish(tmp, path)
    finally:
        if osp.exists(tmp):
            os.remove(tmp)
    return path


def publish_checkpoint(src, out: str | None = None, config: str | None = None) -> str:
    """Publish checkpoint `src` as `<out>-<sha256[:8]>.pth`; `out` defaults to src without .pth, and a folder
    means <folder>/<src name>. `config`: the config's name for meta (default: read from src's meta)."""
    src = os.fspath(src)
    ckpt = safe_load(src)  # a missing, cut or foreign file is a CheckpointError naming it
    stem = out if out is not None else src
    if osp.isdir(stem):
        stem = osp.join(stem, osp.basename(src))
    stem = stem[:-4] if stem.endswith('.pth') else stem
    return write_published(weights_only(ckpt, src, config), stem)


class PublishCheckpointHook(Hook):
    """After training, on rank 0: the final checkpoint that the run's CheckpointHook wrote, published as
    `<work_dir>/<out_dir>/<config name>-<sha256[:8]>.pth` (a folder of its own: --resume never takes it). Named in
    every base config's default_hooks (`default_hooks.publish=None` turns it off)."""
    priority = 'LOWEST'  # after CheckpointHook (VERY_LOW), whose after_train epoch/iteration saved the last one

    def __init__(self, out_dir: str = 'published'):
        self.out_dir = out_dir

    @staticmethod
    def final_checkpoint(runner) -> str | None:
        """The checkpoint the CheckpointHook saved last in this run, else the one `last_checkpoint` names (a
        finished run resumed saves none)."""
        for hook in runner.hooks:
            if isinstance(hook, CheckpointHook) and getattr(hook, 'last_ckpt', None):
                return hook.last_ckpt
        pointer = osp.join(runner.work_dir, POINTER)
        return open(pointer).read().strip() if osp.isfile(pointer) else None

    @master_only
    def after_train(self, runner) -> None:
        ckpt = self.final_checkpoint(runner)
        if not ckpt or not osp.isfile(ckpt):
            print_log(f'PublishCheckpointHook: no checkpoint saved in {runner.work_dir} ({ckpt or "none recorded"}); '
                      'nothing published', logger='current', level='WARNING')
            return
        config = osp.basename(runner.cfg.filename) if runner.cfg.filename else None
        name = osp.splitext(config)[0] if config else runner.experiment_name
        path = publish_checkpoint(ckpt, osp.join(runner.work_dir, self.out_dir, name), config)
        print_log(f'PublishCheckpointHook: {ckpt} published as {path} (weights and meta only)', logger='current')
