"""Image datasets for FCMAE pre-training (§3: any image folder or list file, no labels) and ImageNet fine-tuning
(§5.1: class folders), with the paper's transforms.

Samples are dict(inputs=tensor[, data_samples=label]) so mmengine's `default_collate` stacks them. FCMAE inputs are
uint8 (the model's data preprocessor normalises); fine-tuning inputs come normalised from timm (random erasing acts
on normalised pixels). Mixup/cutmix act on batches, so they live in `ImageClassifier`, not here.
"""
import logging
import os
from pathlib import Path

import numpy as np
import timm.data.auto_augment as timm_aa
import torch
import torchvision.transforms as T
from mmengine.dist import broadcast_object_list, get_rank, is_distributed
from mmengine.logging import print_log
from mmengine.registry import DATASETS
from PIL import Image
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, create_transform

WORKER_SLOTS = 256  # skip counters, one per loader worker id (ids beyond share a slot)
IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.ppm', '.tif', '.tiff', '.webp')
BICUBIC = T.InterpolationMode.BICUBIC


def fcmae_transform(size: int = 224, scale=(0.2, 1.0)) -> T.Compose:
    """RandomResizedCrop(scale 0.2–1, bicubic) + horizontal flip only (paper A.1); uint8 (C, H, W) output."""
    return T.Compose([T.RandomResizedCrop(size, scale=tuple(scale), interpolation=BICUBIC),
                      T.RandomHorizontalFlip(), T.PILToTensor()])


def posterize(img: Image.Image, bits_to_keep: int, **_) -> Image.Image:
    """timm's Posterize op, also at 0 bits (magnitude 10 of PosterizeIncreasing): a black image, what
    `ImageOps.posterize` returned before Pillow 12 (bit mask ~255); Pillow >= 12 raises for bits < 1."""
    if bits_to_keep >= 8:
        return img
    if bits_to_keep <= 0:
        return Image.new(img.mode, img.size)
    return timm_aa.posterize(img, bits_to_keep)


def finetune_transform(size: int = 224, auto_augment: str = 'rand-m9-mstd0.5-inc1', re_prob: float = 0.25,
                       color_jitter: float = 0.4, scale=(0.08, 1.0)):
    """timm's training transform with the official fine-tuning arguments (RandAug (9, 0.5), random erasing 0.25 in
    'pixel' mode; colour jitter is ignored by timm once RandAugment is on; crop area `scale`, timm's default); its
    Posterize ops use `posterize`."""
    transform = create_transform(input_size=size, is_training=True, color_jitter=color_jitter, scale=tuple(scale),
                                 auto_augment=auto_augment, interpolation='bicubic', re_prob=re_prob, re_mode='pixel',
                                 re_count=1, mean=IMAGENET_DEFAULT_MEAN, std=IMAGENET_DEFAULT_STD)
    for t in transform.transforms:  # the ops of this transform only: timm itself is left as it is
        ops = list(getattr(t, 'ops', ())) + [op for sub in getattr(t, 'policy', ()) for op in sub]  # Rand / AutoAug
        for op in ops:
            if getattr(op, 'aug_fn', None) is timm_aa.posterize:
                op.aug_fn = posterize
    return transform


def eval_transform(size: int = 224, crop_pct: float | None = None) -> T.Compose:
    """Resize to size / crop_pct (crop_pct 224/256) and center-crop below 384 px; squash to size×size at ≥ 384,
    as the official build_transform."""
    if size >= 384:
        resize = [T.Resize((size, size), interpolation=BICUBIC)]
    else:
        resize = [T.Resize(int(size / (crop_pct or 224 / 256)), interpolation=BICUBIC), T.CenterCrop(size)]
    return T.Compose(resize + [T.ToTensor(), T.Normalize(IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD)])


TRANSFORMS = dict(fcmae=fcmae_transform, finetune=finetune_transform, eval=eval_transform)


def build_transform(cfg: dict):
    """dict(type='fcmae' | 'finetune' | 'eval', size=..., ...) -> a callable on PIL images."""
    cfg = dict(cfg)
    kind = cfg.pop('type')
    if kind not in TRANSFORMS:
        raise KeyError(f'pipeline type {kind!r}; expected one of {list(TRANSFORMS)}')
    return TRANSFORMS[kind](**cfg)


def load_rgb(path: str) -> Image.Image:
    """Decode fully to 8-bit RGB: grey, palette, CMYK and RGBA (alpha dropped) by PIL; 16-bit grey (PNG/TIFF mode
    I;16*, or I above 255) scaled by 1/256, since PIL's convert('RGB') clips it at 255 (a white image)."""
    with Image.open(path) as img:
        img.load()  # decodes fully: truncated or corrupt files fail here
        if img.mode.startswith('I'):
            x = np.asarray(img, dtype=np.int64)
            x = x >> 8 if img.mode.startswith('I;16') or x.max(initial=0) > 255 else x
            img = Image.fromarray(x.clip(0, 255).astype(np.uint8))
        return img.convert('RGB')


def list_classes(folder: Path) -> list[str]:
    if not folder.is_dir():
        raise FileNotFoundError(f'{folder}: no such folder; expected an ImageNet-style <data_root>/<split>/<class>/')
    return sorted(d.name for d in os.scandir(folder) if d.is_dir())


def pil_extensions() -> tuple[str, ...]:
    """Lower-case file extensions of every format this PIL can open (.jpg, .png, .webp, .tif, .gif, ...)."""
    Image.init()
    return tuple(sorted(ext for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN))


def find_images(folder: Path) -> list[str]:
    """Every image file under `folder` at any depth (symlinks followed, names starting with '.' ignored), in the
    order of a folder-by-folder name sort, so ImageNet's class folders give the same order as ImageFolderDataset."""
    extensions, found = pil_extensions(), []
    for top, dirs, files in os.walk(folder, followlinks=True):
        dirs[:] = [d for d in dirs if not d.startswith('.')]
        found += [os.path.join(top, f) for f in files if not f.startswith('.') and f.lower().endswith(extensions)]
    return sorted(found, key=lambda f: Path(f).relative_to(folder).parts)


def read_list(path: Path) -> list[str]:
    """Image paths from a text file, one a line (blank lines skipped); relative ones are relative to the file."""
    lines = [line.strip() for line in path.read_text().splitlines()]
    return [os.path.join(path.parent, line) if not os.path.isabs(line) else line for line in lines if line]


class PathTable:
    """(path, label or None) pairs held in numpy arrays: the paths' bytes after their common prefix, one buffer, with
    offsets, and int64 labels. Forked loader workers only read these arrays, so copy-on-write copies none of them
    (a list of 1.28M (path, label) tuples is copied page by page into each worker as its refcounts are touched, in
    every epoch when workers restart), as mmengine's BaseDataset serialises its data_list for the same reason."""

    def __init__(self, paths: list, labels: list | None = None):
        self.prefix = os.path.commonprefix(paths) if paths else ''
        skip = len(os.fsencode(self.prefix))
        encoded = [os.fsencode(p)[skip:] for p in paths]  # fsencode: names that are not UTF-8 round-trip
        self.offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
        np.cumsum(np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded)), out=self.offsets[1:])
        self.buffer = np.frombuffer(b''.join(encoded), dtype=np.uint8)
        self.labels = None if labels is None else np.asarray(labels, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, idx: int) -> tuple:
        if not -len(self) <= idx < len(self):
            raise IndexError(f'sample {idx} of {len(self)}')
        idx %= len(self)
        path = self.prefix + os.fsdecode(self.buffer[self.offsets[idx]:self.offsets[idx + 1]].tobytes())
        return path, None if self.labels is None else int(self.labels[idx])

    def __iter__(self):
        return (self[i] for i in range(len(self)))


def build_once(build, *args):
    """build(*args) on global rank 0 only when a process group exists, its result broadcast to the other ranks: one
    walk of a shared filesystem instead of one per rank, and the same sample order on every rank. An error raised
    there is raised on every rank (no rank is left waiting)."""
    if not is_distributed():
        return build(*args)
    result = [None]
    if get_rank() == 0:
        try:
            result = [build(*args)]
        except Exception as e:  # noqa: BLE001 - sent as is, raised below on every rank
            result = [e]
    broadcast_object_list(result, src=0)
    if isinstance(result[0], Exception):
        raise result[0]
    return result[0]


class SkipUnreadable(torch.utils.data.Dataset):
    """`samples`: a PathTable of (path, label or None); an unreadable image is skipped with a warning naming it and
    counted in `skipped`, so one bad file cannot end a run hours in; the next readable image stands in.

    The count lives in shared memory, one slot per loader worker (each written by one process only, so no increment
    is lost when two workers skip at once, under fork or spawn); `skipped` sums them in the main process
    (`SkippedImagesHook` logs it).
    """

    def __init__(self, samples: PathTable, pipeline: dict, source: str):
        self.samples, self.source = samples, source
        self.transform = build_transform(pipeline)
        self._skipped = torch.zeros(1 + WORKER_SLOTS, dtype=torch.int64).share_memory_()  # [main, worker 0, ...]

    @property
    def skipped(self) -> int:
        return int(self._skipped.sum())

    def _count_skip(self) -> int:
        info = torch.utils.data.get_worker_info()
        self._skipped[0 if info is None else 1 + info.id % WORKER_SLOTS] += 1
        return self.skipped

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, idx: int) -> dict:
        for step in range(len(self.samples)):
            path, label = self.samples[(idx + step) % len(self.samples)]
            try:
                img = load_rgb(path)
            except (OSError, ValueError, SyntaxError) as e:  # PIL.UnidentifiedImageError is an OSError
                count = self._count_skip()
                print_log(f'skipped unreadable image {path} ({type(e).__name__}: {e}); skipped so far: {count}',
                          logger='current', level=logging.WARNING)
                continue
            inputs = self.transform(img)
            return dict(inputs=inputs) if label is None else dict(inputs=inputs, data_samples=label)
        raise RuntimeError(f'{self.source}: none of the {len(self.samples)} images is readable')


def class_samples(data_root: str, split: str, classes, reference_split: str) -> tuple:
    """(class names, PathTable of (image, label)) of `<data_root>/<split>/<class>/<image>` (see ImageFolderDataset)."""
    root = Path(data_root) / split
    found = list_classes(root)
    source = 'the class list'
    if classes is None:
        ref = Path(data_root) / reference_split
        classes, source = (list_classes(ref), f'{ref}') if ref.is_dir() else (found, f'{root}')
    elif isinstance(classes, (str, os.PathLike)):
        source = f'{classes}'
        classes = [c.strip() for c in Path(classes).read_text().splitlines() if c.strip()]
    missing, extra = sorted(set(classes) - set(found)), sorted(set(found) - set(classes))
    if missing or extra:
        raise ValueError(f'class folders of {root} differ from {source}: missing {missing[:10]} '
                         f'({len(missing)}), extra {extra[:10]} ({len(extra)})')
    paths, labels = [], []
    for label, name in enumerate(classes):
        files = sorted(f.path for f in os.scandir(root / name)
                       if f.is_file() and f.name.lower().endswith(IMAGE_EXTENSIONS))
        if not files:
            raise ValueError(f'class folder {root / name} holds no images (extensions {IMAGE_EXTENSIONS})')
        paths += files
        labels += [label] * len(files)
    return list(classes), PathTable(paths, labels)


def image_samples(root: Path, source: Path) -> PathTable:
    """PathTable of the images under folder `source` (any depth) or listed by text file `source`, labels None."""
    if source.is_file():
        files = read_list(source)
    elif source.is_dir():
        files = find_images(source)
    else:
        hint = (f'; to read every image under {root} itself, set split=None (--cfg-options '
                'train_dataloader.dataset.split=None)') if root.is_dir() else ''
        raise FileNotFoundError(f'{source}: no such folder or list file; expected a folder of images (any depth) '
                                f'or a text file of image paths{hint}')
    if not files:
        raise ValueError(f'{source}: no images found (a list file with no paths, or a folder without files '
                         f'ending in {", ".join(pil_extensions()[:12])}, ...)')
    return PathTable(files)


@DATASETS.register_module()
class ImageFolderDataset(SkipUnreadable):
    """`<data_root>/<split>/<class>/<image>` with labels from an explicit class list: `classes` (a list or a file of
    names, one a line), else the class folders of `reference_split` (train), so val labels always match train's.
    Rank 0 lists the folders (`build_once`); unreadable images are skipped and counted (`SkipUnreadable`)."""

    def __init__(self, data_root: str, split: str = 'train', pipeline: dict = dict(type='fcmae'),
                 classes: list | str | None = None, reference_split: str = 'train'):
        self.root = Path(data_root) / split
        self.classes, samples = build_once(class_samples, data_root, split, classes, reference_split)
        super().__init__(samples, pipeline, str(self.root))

    @property
    def metainfo(self) -> dict:
        return dict(classes=tuple(self.classes))


@DATASETS.register_module()
class UnlabeledImageDataset(SkipUnreadable):
    """FCMAE's images without labels (samples are dict(inputs)): every image at any depth under `data_root/split`
    (`split=None`: under `data_root`), so ImageNet's `train/<class>/` works as any folder does, in any format PIL
    opens; or, when `data_root` (or `data_root/split`) is a text file, the images it lists. Rank 0 walks the folder
    (`build_once`); unreadable or missing images are skipped and counted (`SkipUnreadable`)."""

    def __init__(self, data_root: str, split: str | None = 'train', pipeline: dict = dict(type='fcmae')):
        root = Path(data_root)
        source = root if root.is_file() or not split else root / split
        super().__init__(build_once(image_samples, root, source), pipeline, str(source))
