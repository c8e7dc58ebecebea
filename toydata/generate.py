"""Deterministic toy datasets in the real on-disk layouts: an ImageNet folder, COCO instances, ADE20K.

Scenes are shapes of several classes drawn on textured backgrounds, later shapes occluding earlier ones. The same
seed gives byte-identical files; tools/demo.sh and the tests train and evaluate on them.
"""
import json
import shutil
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

MARKER = '.toy_data.json'  # written first into every root we own; only such roots are ever cleared


def _ngon(k: int, radii=(1.0,), aspect: float = 1.0) -> np.ndarray:
    a = 2 * np.pi * np.arange(k) / k - np.pi / 2
    r = np.resize(np.asarray(radii, float), k)
    return np.stack([aspect * r * np.cos(a), r * np.sin(a)], 1)


_T = 0.35  # half-width of the cross's arms
UNIT = {  # unit outlines, (K, 2) vertices (x, y) around the origin; scaled, rotated and placed per object
    'circle': _ngon(48), 'square': _ngon(4), 'triangle': _ngon(3), 'star': _ngon(10, (1.0, 0.45)),
    'ellipse': _ngon(48, aspect=0.55), 'hexagon': _ngon(6), 'diamond': _ngon(4, aspect=0.6),
    'cross': np.array([(-1, -_T), (-_T, -_T), (-_T, -1), (_T, -1), (_T, -_T), (1, -_T),
                       (1, _T), (_T, _T), (_T, 1), (-_T, 1), (-_T, _T), (-1, _T)], float),
}
SHAPES = tuple(UNIT)
COLOURS = np.array([(220, 40, 40), (40, 170, 60), (40, 70, 220), (230, 200, 30),
                    (200, 50, 200), (30, 200, 210), (240, 130, 20), (120, 60, 170)], float)  # one per SHAPES entry


def _class_colour(k: int) -> np.ndarray:
    """A fixed colour per ADE20K class id, so every image paints a class alike."""
    return np.random.default_rng(1000 + k).uniform(40, 220, 3)


def _texture(rng, w: int, h: int, c0, c1) -> np.ndarray:
    """Two colours blended by a random field: smooth noise, a linear gradient or stripes; (H, W, 3) float."""
    kind, a = rng.integers(3), rng.uniform(0, np.pi)
    yy, xx = np.mgrid[0:h, 0:w] / max(w, h)
    u = xx * np.cos(a) + yy * np.sin(a)  # position along a random direction
    if kind == 0:  # smooth noise
        t = np.asarray(Image.fromarray(rng.random((h // 8 + 2, w // 8 + 2)).astype(np.float32)).resize((w, h)))
    else:  # a gradient or stripes
        t = (u - u.min()) / np.ptp(u) if kind == 1 else 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(3, 8) * u)
    t = t[..., None]
    return np.asarray(c0, float) * (1 - t) + np.asarray(c1, float) * t + 6 * rng.standard_normal((h, w, 3), np.float32)


def _background(rng, w: int, h: int) -> np.ndarray:
    grey = rng.uniform(90, 170)
    c0, c1 = (grey + 0.4 * (rng.uniform(60, 200, 3) - grey) for _ in range(2))  # muted, so shapes stand out
    return _texture(rng, w, h, c0, c1)


def _shape_mask(rng, kind: str, w: int, h: int, radius=(0.12, 0.3), centre=(0.15, 0.85)) -> np.ndarray:
    """Rasterise one randomly placed, scaled and rotated shape; radius and centre are fractions of the image."""
    r = rng.uniform(*radius) * min(w, h)
    cx, cy = rng.uniform(*centre) * w, rng.uniform(*centre) * h
    a = rng.uniform(0, 2 * np.pi)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    pts = UNIT[kind] @ rot.T * r + (cx, cy)
    ImageDraw.Draw(im := Image.new('L', (w, h))).polygon([tuple(p) for p in pts], fill=1)
    return np.asarray(im) > 0


def _paint(rng, img: np.ndarray, mask: np.ndarray, colour) -> None:
    """Fill `mask` in `img` with a texture around `colour`, drawn over the mask's bounding box only (speed)."""
    ys, xs = np.nonzero(mask)
    c0 = np.clip(colour + rng.normal(0, 12, 3), 0, 255)
    if len(ys):
        box = np.s_[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
        img[box][mask[box]] = _texture(rng, xs.max() - xs.min() + 1, ys.max() - ys.min() + 1, c0, 0.6 * c0)[mask[box]]


def _visible(masks: list) -> list:
    """Visible part of each mask when later masks are drawn over earlier ones."""
    return [m & ~np.any(masks[i + 1:], axis=0) for i, m in enumerate(masks)]


def _object_scene(rng, size: int, label: int) -> np.ndarray:
    """ImageNet-style: one large shape of class `label` near the centre over up to two small distractors."""
    img = _background(rng, size, size)
    for k in rng.integers(len(SHAPES), size=rng.integers(3)):  # small distractors of any class
        _paint(rng, img, _shape_mask(rng, SHAPES[k], size, size, (0.08, 0.14)), COLOURS[k])
    _paint(rng, img, _shape_mask(rng, SHAPES[label], size, size, (0.25, 0.4), (0.35, 0.65)), COLOURS[label])
    return img


# the 'ablation' profile's classes: every combination of a shape, a texture and a layout, in this order; colour is
# random per image, so only the three factors (and their combination) tell the classes apart
COMBO_SHAPES = ('circle', 'square', 'triangle', 'star')
COMBO_TEXTURES = ('plain', 'stripes', 'checker')
COMBO_LAYOUTS = ('one', 'pair')
COMBOS = tuple((s, t, lay) for s in COMBO_SHAPES for t in COMBO_TEXTURES for lay in COMBO_LAYOUTS)


def _pattern(rng, w: int, h: int, c0, kind: str) -> np.ndarray:
    """A fill of colour c0 and its dark shade: plain (noise only), stripes or a checkerboard at a random angle."""
    if kind == 'plain':
        t = np.zeros((h, w))
    else:
        a, f = rng.uniform(0, np.pi), rng.uniform(0.08, 0.14)  # cycles per pixel: 2-3 per small object
        yy, xx = np.mgrid[0:h, 0:w]
        u, v = xx * np.cos(a) + yy * np.sin(a), -xx * np.sin(a) + yy * np.cos(a)
        t = np.sin(2 * np.pi * f * u) > 0
        if kind == 'checker':
            t = t ^ (np.sin(2 * np.pi * f * v) > 0)
    t = np.asarray(t, float)[..., None]
    return np.asarray(c0) * (1 - 0.55 * t) + 6 * rng.standard_normal((h, w, 3))


def _combo_scene(rng, size: int, label: int | None) -> np.ndarray:
    """COMBOS[label]: one large shape near the centre ('one') or two smaller ones side by side ('pair'), all filled
    with the class's texture in a random colour, over up to one small plain distractor; label None: a random class."""
    shape, texture, layout = COMBOS[rng.integers(len(COMBOS)) if label is None else label]
    img = _background(rng, size, size)
    if rng.random() < 0.5:  # a small plain distractor of any shape
        _paint_pattern(rng, img, _shape_mask(rng, SHAPES[rng.integers(len(SHAPES))], size, size, (0.07, 0.1)),
                       'plain')
    if layout == 'one':
        masks = [_shape_mask(rng, shape, size, size, (0.26, 0.36), (0.4, 0.6))]
    else:  # left and right halves, or top and bottom
        flip = rng.random() < 0.5
        masks = []
        for lo, hi in ((0.22, 0.32), (0.68, 0.78)):
            m = _shape_mask(rng, shape, size, size, (0.14, 0.19), (lo, hi))
            masks.append(m.T if flip else m)
    colour = rng.uniform(60, 230, 3)
    for m in masks:
        _paint_pattern(rng, img, m, texture, colour)
    return img


def _paint_pattern(rng, img: np.ndarray, mask: np.ndarray, kind: str, colour=None) -> None:
    """Fill `mask` in `img` with the pattern `kind` around `colour` (random when None)."""
    colour = rng.uniform(60, 230, 3) if colour is None else colour
    img[mask] = _pattern(rng, img.shape[1], img.shape[0], np.clip(colour + rng.normal(0, 10, 3), 0, 255), kind)[mask]


def _instance_scene(rng, w: int, h: int, classes, max_objects: int):
    """COCO-style: 1..max_objects shapes of `classes`, later ones occluding earlier ones; (image, labels, masks)."""
    img = _background(rng, w, h)
    labels = rng.integers(len(classes), size=rng.integers(1, max_objects + 1))
    masks = [_shape_mask(rng, classes[k], w, h) for k in labels]
    for k, m in zip(labels, masks):
        _paint(rng, img, m, COLOURS[SHAPES.index(classes[k])])
    return img, labels, masks


def _stuff_scene(rng, w: int, h: int, stuff, things):
    """ADE20K-style: two stuff regions split by a wavy horizon, 1-4 thing shapes, one unlabelled clutter shape;
    (image, label map with ADE ids, 0 = other)."""
    horizon = h * rng.uniform(0.35, 0.65) + h * 0.08 * np.sin(np.arange(w) / w * rng.uniform(2, 9))
    below = np.arange(h)[:, None] >= horizon[None, :]
    top, bottom = rng.choice(stuff, 2, replace=len(stuff) < 2)
    label = np.where(below, bottom, top).astype(np.uint8)
    img = np.where(below[..., None], _texture(rng, w, h, _class_colour(bottom), 0.7 * _class_colour(bottom)),
                   _texture(rng, w, h, _class_colour(top), 0.7 * _class_colour(top)))
    for j in rng.integers(len(things), size=rng.integers(1, 5)):  # thing j is drawn as SHAPES[j]
        mask = _shape_mask(rng, SHAPES[j % len(SHAPES)], w, h)
        _paint(rng, img, mask, _class_colour(things[j]))
        label[mask] = things[j]
    clutter = _shape_mask(rng, SHAPES[rng.integers(len(SHAPES))], w, h, (0.06, 0.1))
    _paint(rng, img, clutter, rng.uniform(60, 200, 3))
    label[clutter] = 0
    return img, label


def _save(img: np.ndarray, path: Path) -> None:
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(path, quality=90)


def _prepare(root, params: dict) -> Path:
    """Empty `root` for a fresh deterministic write; refuse a non-empty folder that we did not write."""
    root = Path(root)
    if root.exists() and any(root.iterdir()):
        if not (root / MARKER).is_file():
            raise FileExistsError(f'{root} is not empty and holds no {MARKER}, so toydata did not write it; '
                                  'refusing to overwrite it (choose an empty or new folder)')
        shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)
    (root / MARKER).write_text(json.dumps(params, sort_keys=True) + '\n')
    return root


def _polygons(mask: np.ndarray) -> list:
    """Exact outline of a binary mask as COCO polygons with vertices on pixel corners.

    Each ring of crack edges is one polygon; when the mask has holes, all rings form one polygon joined by bridges
    that go out and back, which even-odd filling (pycocotools, mmdet) cancels, so rasterising gives the mask back.
    """
    p = np.pad(mask.astype(bool), 1)  # padded pixel (r, c) spans corners x in [c, c+1], y in [r, r+1]
    out = {}  # crack edges, clockwise on screen around inside pixels: start corner -> end corners
    for (rows, cols), (x0, y0, x1, y1) in (
            (np.nonzero(p[1:] & ~p[:-1]), (0, 1, 1, 1)),  # top sides, going right
            (np.nonzero(p[:-1] & ~p[1:]), (1, 1, 0, 1)),  # bottom sides, going left
            (np.nonzero(p[:, 1:] & ~p[:, :-1]), (1, 1, 1, 0)),  # left sides, going up
            (np.nonzero(p[:, :-1] & ~p[:, 1:]), (1, 0, 1, 1))):  # right sides, going down
        for r, c in zip(rows.tolist(), cols.tolist()):
            out.setdefault((c + x0, r + y0), []).append((c + x1, r + y1))
    rings = []
    while out:
        start = v = min(out)
        ring = [start]
        while True:
            v = out[v].pop() if len(out[v]) > 1 else out.pop(v)[0]
            if v == start:
                break
            ring.append(v)
        # keep the corners where the direction turns; shift back from padded coordinates
        ring = [b for a, b, c in zip(ring[-1:] + ring[:-1], ring, ring[1:] + ring[:1])
                if (b[0] - a[0], b[1] - a[1]) != (c[0] - b[0], c[1] - b[1])]
        rings.append([(x - 1.0, y - 1.0) for x, y in ring])
    areas = [sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in zip(r, r[1:] + r[:1])) for r in rings]
    if min(areas) > 0:  # outer rings only (holes run anticlockwise, with negative area)
        return [[v for pt in ring for v in pt] for ring in rings]
    anchor, joined = rings[0][0], rings[0] + [rings[0][0]]
    for ring in rings[1:]:
        joined += ring + [ring[0], anchor]
    return [[v for pt in joined for v in pt]]


def _annotation(mask: np.ndarray, ann_id: int, image_id: int, category_id: int, rle: bool) -> dict:
    ys, xs = np.nonzero(mask)
    bbox = [float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1), float(ys.max() - ys.min() + 1)]
    if rle:
        from pycocotools import mask as mask_utils
        segm = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
        segm = dict(size=[int(s) for s in segm['size']], counts=segm['counts'].decode('ascii'))
    else:
        segm = _polygons(mask)
    return dict(id=ann_id, image_id=image_id, category_id=category_id, bbox=bbox, area=float(mask.sum()),
                iscrowd=0, segmentation=segm)


def imagenet_folder(root, classes: int = 4, train_per_class: int = 8, val_per_class: int = 4, size: int = 64,
                    seed: int = 0, scene: str = 'shapes') -> dict:
    """ImageNet layout `root/{train,val}/<wnid>/*.JPEG`. scene 'shapes': one large shape of its class on top;
    'combos': the class is a shape x texture x layout combination (COMBOS), which few labels do not make easy."""
    names = dict(shapes=SHAPES, combos=['_'.join(c) for c in COMBOS]).get(scene)
    if names is None:
        raise ValueError(f"scene={scene!r}: expected 'shapes' or 'combos'")
    if not 1 <= classes <= len(names):
        raise ValueError(f'classes={classes}: expected 1..{len(names)} for scene {scene!r} (one per {names})')
    params = dict(kind='imagenet', classes=classes, train_per_class=train_per_class, val_per_class=val_per_class,
                  size=size, seed=seed)
    root = _prepare(root, params if scene == 'shapes' else dict(params, scene=scene))
    rng = np.random.default_rng(seed)
    draw = _object_scene if scene == 'shapes' else _combo_scene
    names = [f'n{i:08d}_{names[i]}' for i in range(classes)]  # WNID-like, sorted in class order
    summary = dict(root=str(root), classes=names)
    for split, n in (('train', train_per_class), ('val', val_per_class)):
        summary[split] = []
        for label, name in enumerate(names):
            (root / split / name).mkdir(parents=True)
            for j in range(n):
                img = draw(rng, size, label)
                path = root / split / name / f'{name}_{j:05d}.JPEG'
                _save(img, path)
                summary[split].append((str(path), label))
    return summary


def coco_instances(root, train_images: int = 8, val_images: int = 4, size=(128, 96),
                   classes=('circle', 'square', 'triangle'), max_objects: int = 4, seed: int = 0,
                   mask_format: str = 'polygon') -> dict:
    """mmdet's COCO layout: `annotations/instances_{train,val}2017.json`, images in `{train,val}2017/`.

    Masks are the visible parts; objects with under 30% of their shape (or 16 px) visible are left unannotated.
    mask_format: 'polygon', 'rle' (compressed, counts as str) or 'mixed' (alternating by annotation id).
    """
    if mask_format not in ('polygon', 'rle', 'mixed'):
        raise ValueError(f"mask_format={mask_format!r}: expected 'polygon', 'rle' or 'mixed'")
    if not classes or set(classes) - set(SHAPES):
        raise ValueError(f'classes={classes}: expected a non-empty subset of {SHAPES}')
    w, h = size
    root = _prepare(root, dict(kind='coco', train_images=train_images, val_images=val_images, size=[w, h],
                               classes=list(classes), max_objects=max_objects, seed=seed, mask_format=mask_format))
    (root / 'annotations').mkdir()
    rng = np.random.default_rng(seed)
    categories = [dict(id=i + 1, name=c, supercategory='shape') for i, c in enumerate(classes)]
    summary, image_id, ann_id = dict(root=str(root), classes=list(classes)), 0, 0
    for split, n in (('train2017', train_images), ('val2017', val_images)):
        (root / split).mkdir()
        images, annotations = [], []
        for _ in range(n):
            image_id += 1  # ids unique across splits, so file names are too
            img, labels, masks = _instance_scene(rng, w, h, classes, max_objects)
            images.append(dict(id=image_id, file_name=f'{image_id:012d}.jpg', width=w, height=h))
            _save(img, root / split / images[-1]['file_name'])
            for k, full, vis in zip(labels, masks, _visible(masks)):
                if vis.sum() < max(16, 0.3 * full.sum()):
                    continue
                ann_id += 1
                rle = mask_format == 'rle' or (mask_format == 'mixed' and ann_id % 2 == 0)
                annotations.append(_annotation(vis, ann_id, image_id, int(k) + 1, rle))
        ann_file = root / 'annotations' / f'instances_{split}.json'
        ann_file.write_text(json.dumps(dict(info=dict(description='make_toy_data.py', version='1.0'), licenses=[],
                                            images=images, annotations=annotations, categories=categories)))
        summary[split[:-4]] = dict(ann_file=str(ann_file), img_dir=str(root / split), images=len(images),
                                   annotations=len(annotations))
    return summary


def ade20k(root, train_images: int = 8, val_images: int = 4, size=(128, 96), num_classes: int = 150,
           classes_used=(1, 3, 4, 13, 16, 21), seed: int = 0) -> dict:
    """mmseg's ADE20K layout: `images/{training,validation}/*.jpg`, `annotations/.../*.png` (mode L, 0 = other).

    classes_used are ADE's 1-based ids: the first half label background regions (default wall, sky, floor), the
    rest label shapes (default person, table, car). A small clutter shape in every image is labelled 0.
    """
    used = [int(k) for k in classes_used]
    if len(used) < 2 or not all(1 <= k <= num_classes for k in used) or num_classes > 254:
        raise ValueError(f'classes_used={classes_used}: expected >= 2 ids in 1..num_classes={num_classes} (<= 254)')
    stuff, things = used[:len(used) // 2], used[len(used) // 2:]
    w, h = size
    root = _prepare(root, dict(kind='ade20k', train_images=train_images, val_images=val_images, size=[w, h],
                               num_classes=num_classes, classes_used=used, seed=seed))
    rng = np.random.default_rng(seed)
    summary = dict(root=str(root), stuff=stuff, things=things)
    for split, prefix, n in (('training', 'ADE_train', train_images), ('validation', 'ADE_val', val_images)):
        (root / 'images' / split).mkdir(parents=True)
        (root / 'annotations' / split).mkdir(parents=True)
        summary[split] = []
        for i in range(1, n + 1):
            img, label = _stuff_scene(rng, w, h, stuff, things)
            name = f'{prefix}_{i:08d}'
            pair = (root / 'images' / split / f'{name}.jpg', root / 'annotations' / split / f'{name}.png')
            _save(img, pair[0])
            Image.fromarray(label).save(pair[1])
            summary[split].append(tuple(map(str, pair)))
    return summary


def unlabeled(root, images: int = 64, size=(128, 128), seed: int = 0, per_folder: int = 256,
              scene: str = 'mixed') -> dict:
    """An unlabeled pool for FCMAE pre-training, in sub-folders of `per_folder` (UnlabeledImageDataset). scene
    'mixed': the three scene kinds (one large shape of any of the 8 classes, instance scenes with all 8, stuff
    scenes) in turn; 'combos': the 'ablation' profile's scenes of random classes (square, min(size))."""
    if scene not in ('mixed', 'combos'):
        raise ValueError(f"scene={scene!r}: expected 'mixed' or 'combos'")
    w, h = size
    params = dict(kind='unlabeled', images=images, size=[w, h], seed=seed, per_folder=per_folder)
    root = _prepare(root, params if scene == 'mixed' else dict(params, scene=scene))
    rng, paths = np.random.default_rng(seed), []
    stuff, things = (1, 3, 4), (13, 16, 21)
    for i in range(images):
        if scene == 'combos':
            img = _combo_scene(rng, min(w, h), None)
        elif i % 3 == 0:
            img = _object_scene(rng, min(w, h), int(rng.integers(len(SHAPES))))
        elif i % 3 == 1:
            img = _instance_scene(rng, w, h, SHAPES, 5)[0]
        else:
            img = _stuff_scene(rng, w, h, stuff, things)[0]
        (folder := root / f'part_{i // per_folder:03d}').mkdir(exist_ok=True)
        _save(img, path := folder / f'{i:06d}.jpg')
        paths.append(str(path))
    return dict(root=str(root), images=paths)


PROFILES = {  # tools/make_toy_data.py --profile: each writer's arguments (unlabeled: None = not written)
    # the writers' own defaults: 8 (COCO, ADE20K) / 4 x 8 (ImageNet) train images, 128x96 / 64 px; tests, demo
    'small': dict(imagenet={}, coco={}, ade20k={}, unlabeled=None),
    # held-out learning at 128 x 128 (docs/STUDIES.md): 4 x 64 / 256 / 256 train, half as many held out (a
    # quarter for COCO / ADE20K), up to 5 objects a COCO scene, and a 2,048-image unlabeled pool for FCMAE
    'learn': dict(imagenet=dict(train_per_class=64, val_per_class=32, size=128),
                  coco=dict(train_images=256, val_images=64, size=(128, 128), max_objects=5),
                  ade20k=dict(train_images=256, val_images=64, size=(128, 128)),
                  unlabeled=dict(images=2048, size=(128, 128))),
    # the ablation studies (benchmarks/ablations.py): 24 shape x texture x layout classes at 128 px, 32 labels a
    # class, 128 held out (on 16 the same checkpoints scored 0.5-4.3 points higher, with a mean seed spread of 1.7
    # points against 1.0: docs/ABLATIONS.md), and a 2,048-image unlabeled pool of the same scenes for FCMAE
    'ablation': dict(imagenet=dict(scene='combos', classes=len(COMBOS), train_per_class=32, val_per_class=128,
                                   size=128),
                     unlabeled=dict(scene='combos', images=2048, size=(128, 128))),
}
DATASETS = ('imagenet', 'coco', 'ade20k', 'unlabeled')


def write_all(root, datasets=None, seed: int = 0, size=None, images=None, mask_format: str = 'polygon',
              profile: str = 'small', pool=None) -> dict:
    """The chosen toy datasets under ROOT/<name>, {name: summary}; datasets=None: all that `profile` writes.
    `images` (train images per split, ImageNet: per class; val gets half), `pool` (unlabeled images) and `size`
    (W, H; ImageNet: min(W, H) square) override the profile."""
    if profile not in PROFILES:
        raise ValueError(f'profile={profile!r}: expected one of {sorted(PROFILES)}')
    kwargs = {name: dict(kw) for name, kw in PROFILES[profile].items() if kw is not None}
    datasets = list(kwargs) if datasets is None else list(datasets)
    if set(datasets) - set(DATASETS):
        raise ValueError(f'datasets {sorted(set(datasets) - set(DATASETS))}: expected names from {DATASETS}')
    root, out = Path(root), {}
    for name in datasets:
        kw = kwargs.get(name, {})
        if size is not None:
            kw['size'] = min(size) if name == 'imagenet' else size
        if name == 'unlabeled':
            kw.update({} if pool is None else dict(images=pool))
        elif images is not None:
            kw.update(dict(train_per_class=images, val_per_class=max(1, images // 2)) if name == 'imagenet' else
                      dict(train_images=images, val_images=max(1, images // 2)))
        if name == 'coco':
            kw['mask_format'] = mask_format
        writer = dict(imagenet=imagenet_folder, coco=coco_instances, ade20k=ade20k, unlabeled=unlabeled)[name]
        out[name] = writer(root / name, seed=seed, **kw)
    return out


def summary_line(name: str, s: dict) -> str:
    """One printed line per dataset written by write_all."""
    if name == 'imagenet':
        return f"imagenet: {s['root']}: {len(s['classes'])} classes, {len(s['train'])} train / {len(s['val'])} val"
    if name == 'coco':
        return (f"coco: {s['root']}: train {s['train']['images']} images / {s['train']['annotations']} objects, "
                f"val {s['val']['images']} / {s['val']['annotations']}")
    if name == 'unlabeled':
        return f"unlabeled: {s['root']}: {len(s['images'])} images"
    return f"ade20k: {s['root']}: {len(s['training'])} training / {len(s['validation'])} validation pairs"
