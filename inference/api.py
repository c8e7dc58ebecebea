"""`run`: the stage read from the config, one predictor built, every input image through it with a progress bar;
an unreadable image is named in a warning and the rest go on."""
import logging
import sys
from pathlib import Path

import torch
from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.utils import ProgressBar

from runtime import load_cfg

from .inputs import UnreadableImage, collect_images, read_rgb

TASKS = ('detection', 'segmentation', 'classification', 'reconstruction')


def task_of(cfg: Config) -> str:
    """FCMAE model -> reconstruction, ImageClassifier -> classification, else the config's mmdet / mmseg scope."""
    model_type = cfg.get('model', {}).get('type')
    scope = cfg.get('default_scope')
    task = {'FCMAE': 'reconstruction', 'ImageClassifier': 'classification'}.get(model_type) or \
        {'mmdet': 'detection', 'mmseg': 'segmentation'}.get(scope)
    if task is None:
        raise ValueError(f'{cfg.filename}: model.type={model_type!r}, default_scope={scope!r}: not a stage of this '
                         "suite; expected an FCMAE or ImageClassifier model, or a default_scope 'mmdet' / 'mmseg' "
                         'config')
    return task


def resolve_device(device: str | None) -> str:
    """None -> cuda when available, else cpu; cuda asked for on a machine without it is an error here, not later."""
    if device is None:
        return 'cuda' if torch.cuda.is_available() else 'cpu'
    if device != 'cpu' and not device.startswith('cuda'):
        raise ValueError(f'--device {device!r}: expected cpu, cuda or cuda:N')
    if device.startswith('cuda') and not torch.cuda.is_available():
        why = 'this torch is built without CUDA' if torch.version.cuda is None else 'no CUDA device is visible'
        raise RuntimeError(f'--device {device}: {why} (torch {torch.__version__}); use --device cpu')
    return device


def build_predictor(task: str, cfg: Config, checkpoint: str, device: str, out_dir: Path, **opts):
    if task == 'detection':
        from .detection import Detection as predictor
    elif task == 'segmentation':
        from .segmentation import Segmentation as predictor
    elif task == 'classification':
        from .classification import Classification as predictor
    else:
        from .reconstruction import Reconstruction as predictor
    return predictor(cfg, checkpoint, device, out_dir, **opts)


def run(config: str, checkpoint: str, inputs: list[str], out_dir: str, device: str | None = None,
        cfg_options: dict | None = None, **opts) -> dict:
    """Predict every image of `inputs` into out_dir; opts: topk (classification), score_thr (detection), seed
    (FCMAE mask). Returns the task, the images predicted and failed, and the files written."""
    device = resolve_device(device)
    items = collect_images(inputs)  # a missing input fails before a model is built
    cfg = load_cfg(config, cfg_options, out_dir, 'none')  # as tools/train.py: data_root=PATH re-points datasets
    task = task_of(cfg)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    predictor = build_predictor(task, cfg, checkpoint, device, out, **opts)
    results, failed = [], []
    bar = ProgressBar(len(items), file=sys.stderr)
    for item in items:
        try:
            rgb = read_rgb(item.path)
        except UnreadableImage as e:  # only reading is caught: a model error is a bug and stops the run
            failed.append(str(item.path))
            print_log(f'\ninfer: {e}; skipped', logger='current', level=logging.WARNING)
        else:
            results.append(predictor(rgb, item))
        bar.update()
    written = [r['drawn'] for r in results if 'drawn' in r] + predictor.finish()
    for r in results:
        print(f'{r["file"]}: {r["line"]}')
    print(f'infer: {task}, {len(results)} of {len(items)} images predicted into {out}'
          + (f'; {len(failed)} unreadable: {", ".join(failed)}' if failed else ''))
    return dict(task=task, predicted=[r['file'] for r in results], failed=failed, written=written)
