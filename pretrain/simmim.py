"""SimMIM pre-training of Swin in the suite: mmpretrain's own SimMIM on the suite's image pools. `MMPretrainPipeline`
feeds a suite dataset's decoded images (any folder depth or list file, unreadable images skipped and counted) through
mmpretrain's transforms. Imported by the SimMIM configs only (custom_imports), so `pretrain` does not need mmpretrain.
"""
import numpy as np
import torch
from mmengine.dataset import Compose
from mmengine.registry import DATASETS


def decoded_array(img) -> np.ndarray:
    """A decoded PIL image as the (H, W, 3) uint8 RGB array that mmpretrain's transforms take (a writable copy)."""
    return np.array(img)


@DATASETS.register_module()
class MMPretrainPipeline(torch.utils.data.Dataset):
    """Images decoded by `dataset` (a suite dataset config such as UnlabeledImageDataset), then `pipeline`: mmpretrain
    transforms ('mmpretrain.'-prefixed types) on dict(img=RGB array), as after mmpretrain's LoadImageFromFile except
    for the channel order (RGB here, so the data preprocessor takes to_rgb=False)."""

    def __init__(self, dataset: dict, pipeline: list):
        self.dataset = DATASETS.build(dataset)
        if not callable(getattr(self.dataset, 'transform', None)):
            raise TypeError(f'MMPretrainPipeline: {type(self.dataset).__name__} has no per-image `transform` to '
                            'replace; expected a suite dataset of pretrain/data.py (SkipUnreadable)')
        self.dataset.transform = decoded_array  # its crop/flip/tensor transform gives way to mmpretrain's pipeline
        self.pipeline = Compose(pipeline)

    def __len__(self) -> int:
        return len(self.dataset)

    @property
    def skipped(self) -> int:
        """Unreadable images skipped so far (SkippedImagesHook logs it)."""
        return self.dataset.skipped

    def __getitem__(self, idx: int) -> dict:
        img = self.dataset[idx]['inputs']
        return self.pipeline(dict(img=img, img_shape=img.shape[:2], ori_shape=img.shape[:2], sample_idx=idx))
