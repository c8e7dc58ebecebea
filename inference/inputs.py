"""The images tools/infer.py reads: files, folders (recursively) and globs, each decoded once to RGB; an unreadable
file raises `UnreadableImage` naming it, so the caller can warn and go on with the rest."""
import glob
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from pretrain.data import load_rgb


class UnreadableImage(ValueError):
    """An input file that PIL cannot decode (corrupt, truncated, not an image)."""


@dataclass(frozen=True)
class Item:
    path: Path  # the file as found
    name: str  # output name without extension: the path below the folder or glob root given (unique)


def image_extensions() -> set[str]:
    """Every extension PIL can open (folders and globs are filtered by these; files named directly are not)."""
    Image.init()
    return {ext for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN}


def _expand(spec: str, exts: set[str]) -> tuple[list[Path], Path]:
    """(files, the root their output names are taken relative to) of one INPUTS entry."""
    path = Path(spec)
    if path.is_dir():
        return sorted(f for f in path.rglob('*') if f.is_file() and f.suffix.lower() in exts), path
    if path.is_file():
        return [path], path.parent
    if glob.has_magic(spec):
        files = sorted(Path(f) for f in glob.glob(spec, recursive=True)
                       if os.path.isfile(f) and Path(f).suffix.lower() in exts)
        return files, Path(os.path.commonpath([f.parent for f in files])) if files else path.parent
    raise FileNotFoundError(f'{spec}: no such file or folder, and not a glob pattern')


def collect_images(inputs: list[str]) -> list[Item]:
    """Items in the order given (folders and globs sorted); a file reached twice is taken once; an entry that
    matches no image is an error (a typo should not pass as an empty run)."""
    exts, items, seen, names = image_extensions(), [], set(), set()
    for spec in inputs:
        files, root = _expand(spec, exts)
        if not files:
            shown = ', '.join(sorted(exts)[:12])
            raise FileNotFoundError(f'{spec}: holds no image file (extensions PIL reads: {shown}, ...)')
        for f in files:
            if f.resolve() in seen:
                continue
            seen.add(f.resolve())
            base = f.relative_to(root).with_suffix('').as_posix()
            name, k = base, 1
            while name in names:  # a.jpg and a.png in one folder, or two folders given with the same file names
                k += 1
                name = f'{base}_{k}'
            names.add(name)
            items.append(Item(f, name))
    return items


def read_rgb(path: Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB by the suite's decoder (pretrain.data.load_rgb), EXIF orientation applied as mmcv's
    loader applies it; UnreadableImage naming the file otherwise."""
    try:
        return np.asarray(ImageOps.exif_transpose(load_rgb(str(path))))
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise UnreadableImage(f'{path}: cannot read it as an image ({type(e).__name__}: {e})') from None
