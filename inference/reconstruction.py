"""FCMAE: the reconstruction grid per image (original | masked | reconstruction | visible patches pasted back),
drawn by pretrain.visualize, the code behind tools/visualize_fcmae.py."""
import copy
from pathlib import Path

import numpy as np
import torchvision.transforms as T
from mmengine.registry import MODELS, init_default_scope
from PIL import Image

from pretrain.visualize import grid, load_fcmae, reconstruct

from .common import output_path


class Reconstruction:
    """The config's FCMAE with encoder and decoder from the checkpoint; square crops of the training size."""

    def __init__(self, cfg, checkpoint: str, device: str, out_dir: Path, seed: int = 0, **_):
        init_default_scope(cfg.get('default_scope', 'mmengine'))
        self.model = MODELS.build(copy.deepcopy(cfg.model)).eval()
        load_fcmae(self.model, checkpoint)  # through backbone.checkpoint.safe_load (weights-only)
        self.model.to(device)
        size = cfg.get('train_dataloader', {}).get('dataset', {}).get('pipeline', {}).get('size', 224)
        self.prepare = T.Compose([T.Resize(size, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(size),
                                  T.PILToTensor()])  # as pretrain.visualize.visualize
        self.device, self.seed, self.out_dir = device, seed, Path(out_dir)

    def __call__(self, rgb: np.ndarray, item) -> dict:
        img = self.prepare(Image.fromarray(rgb)).to(self.device)
        drawn = output_path(self.out_dir, 'vis', item.name)
        grid([p.cpu() for p in reconstruct(self.model, img, self.seed)]).save(drawn)
        return dict(file=str(item.path), drawn=str(drawn), line='original | masked | reconstruction | pasted')

    def finish(self) -> list[str]:
        return []
