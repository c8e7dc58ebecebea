"""Pre-flight data checks (issue 8): read every COCO annotation file and ADE20K label map that a config trains or
validates on before any runner exists, so that bad annotations give an error naming the file, record and key, or a
named, counted skip, instead of a bare KeyError at dataset build or an IndexError in the loss mid-training.

    python tools/preflight.py CONFIG [--work-dir W] [--cfg-options k=v ...]   # summary; exit 1 on errors

tools/train.py calls check(cfg) before building the runner (--no-preflight skips it). Other dataset types are
skipped. Label-map scans are cached in WORK_DIR/preflight_cache.json by (size, mtime_ns), so a resumed run
rereads only the files that changed."""
import argparse
import json
import logging
import os
import os.path as osp
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from mmengine.logging import print_log

SHOW = 10  # records named per kind of problem
CACHE = 'preflight_cache.json'
IMAGE_KEYS = dict(id='a unique integer', file_name="the image's path under data_prefix img", width='pixels',
                  height='pixels')
ANN_KEYS = dict(id='a unique integer', image_id="the id of an entry of 'images'",
                category_id="the id of an entry of 'categories'", bbox='[x, y, width, height]: 4 numbers',
                area='a number of pixels', iscrowd='0 or 1')
MASK_KEYS = dict(segmentation='polygons [[x1, y1, ...], ...] or RLE {size, counts}, as the config loads masks')
CAT_KEYS = dict(id='a unique integer', name="the class name that metainfo.classes matches")
TOP_KEYS = dict(images='a list of {id, file_name, width, height}', annotations='a list of {id, image_id, '
                'category_id, bbox, area, iscrowd, segmentation}', categories='a list of {id, name}')


class DataError(ValueError):
    """Annotations that would fail or silently mistrain; the message lists each kind with a count and records."""


class Found:
    """Problems (or skips) of one file by kind: key -> [count, first SHOW records, what it means]."""

    def __init__(self):
        self.kinds = {}

    def add(self, key: str, record, text: str):
        entry = self.kinds.setdefault(key, [0, [], text])
        entry[0] += 1
        if len(entry[1]) < SHOW:
            entry[1].append(str(record))

    def counts(self) -> dict:
        return {key: n for key, (n, _, _) in self.kinds.items()}

    def lines(self) -> list:
        """One line per kind, the records comma-separated (for a log line)."""
        return [f'{n} {text}: {", ".join(shown)}{", ..." if n > len(shown) else ""}'
                for n, shown, text in self.kinds.values()]

    def block(self) -> list:
        """One line per kind, then one per record (for an error message)."""
        out = []
        for n, shown, text in self.kinds.values():
            out += [f'  {n} {text}:'] + [f'    {record}' for record in shown]
            out += [f'    ... and {n - len(shown)} more'] if n > len(shown) else []
        return out


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
    from mmengine.registry import DATASETS
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


# ------------------------------------------------------------------------------------------------------- COCO
def coco_fields(data, classes, with_mask: bool, errors: Found):
    """Keys, types and references that mmdet's CocoDataset and CocoMetric read without a check."""
    if not isinstance(data, dict):
        return errors.add('not_an_object', type(data).__name__, 'top level that is not an object')
    for key, what in TOP_KEYS.items():
        if not isinstance(data.get(key), list):
            errors.add(f'missing_{key}', key, f'top-level {key!r} missing or not a list (expected {what})')
    sections = (('images', IMAGE_KEYS), ('categories', CAT_KEYS),
                ('annotations', dict(ANN_KEYS, **(MASK_KEYS if with_mask else {}))))
    for section, keys in sections:
        seen = set()
        for i, rec in enumerate(data.get(section) or []):
            name = f'{section}[{i}]' + (f' (id {rec.get("id")})' if isinstance(rec, dict) else '')
            if not isinstance(rec, dict):
                errors.add(f'{section}_not_objects', name, f'{section} entries that are not objects')
                continue
            for key, what in keys.items():
                if key not in rec or (key == 'segmentation' and not rec[key]):
                    errors.add(f'{section}_without_{key}', name, f'{section} without {key!r} (expected {what})')
            box = rec.get('bbox', [0] * 4)
            if not (isinstance(box, list) and len(box) == 4 and all(isinstance(v, (int, float)) for v in box)):
                errors.add('bad_bbox', f'{name}: {str(box)[:40]}', f"annotations whose 'bbox' is not "
                           f"{ANN_KEYS['bbox']}")
            if 'id' in rec and rec['id'] in seen:
                errors.add(f'{section}_duplicate_id', name, f'{section} with a duplicate id')
            seen.add(rec.get('id'))
    ids = {s: {r.get('id') for r in data.get(s) or [] if isinstance(r, dict)} for s in ('images', 'categories')}
    for i, ann in enumerate(data.get('annotations') or []):
        for key, section in (('image_id', 'images'), ('category_id', 'categories')):
            if isinstance(ann, dict) and key in ann and isinstance(data.get(section), list) \
                    and ann[key] not in ids[section]:
                errors.add(f'unknown_{key}', f'annotations[{i}] (id {ann.get("id")}, {key} {ann[key]})',
                           f'annotations whose {key} is not in {section!r}')
    names = [c.get('name') for c in data.get('categories') or [] if isinstance(c, dict)]
    for name in classes if isinstance(data.get('categories'), list) else ():
        if names.count(name) != 1:  # mmdet's cat2label would shift the labels of every later class
            errors.add('classes_not_once_in_categories', f'{name!r} ({names.count(name)})',
                       "classes of the config not named by exactly one entry of 'categories' (labels would shift)")


def coco_skips(data, ds, skips: Found):
    """What mmdet's CocoDataset.parse_data_info and filter_data leave out, by the same rules, named and counted."""
    cat_ids = [c['id'] for c in data['categories'] if c['name'] in ds.metainfo['classes']]  # mmdet get_cat_ids
    images = {im['id']: im for im in data['images']}
    usable, with_class = set(), set()  # images with a kept non-crowd box; images in pycocotools' catToImgs
    for ann in data['annotations']:
        im, (x, y, w, h) = images[ann['image_id']], ann['bbox']
        if ann['category_id'] in cat_ids:
            with_class.add(ann['image_id'])
        if ann.get('ignore', False):
            skips.add('ignored_boxes', ann['id'], "boxes flagged 'ignore' skipped (ann ids)")
        elif ann['area'] <= 0 or w < 1 or h < 1:  # mmdet tests this after the overlap; same skip, clearer name
            skips.add('zero_size_boxes', ann['id'], 'boxes of zero size (width or height < 1 px, or area <= 0) '
                      'skipped (ann ids)')
        elif max(0, min(x + w, im['width']) - max(x, 0)) * max(0, min(y + h, im['height']) - max(y, 0)) == 0:
            skips.add('outside_boxes', ann['id'], 'boxes outside their image skipped (ann ids)')
        elif ann['category_id'] not in cat_ids:
            skips.add('other_class_boxes', ann['id'], "boxes of categories outside the config's classes skipped "
                      '(ann ids)')
        elif not ann.get('iscrowd', False):
            usable.add(ann['image_id'])
    filter_cfg = None if ds.test_mode else ds.filter_cfg or None
    for im in data['images']:
        if filter_cfg and filter_cfg.get('filter_empty_gt', False) and im['id'] not in with_class:
            skips.add('empty_images', im['file_name'], 'images without annotations left out of training by '
                      'filter_empty_gt')
        elif filter_cfg and min(im['width'], im['height']) < filter_cfg.get('min_size', 0):
            skips.add('small_images', im['file_name'], f'images under min_size={filter_cfg["min_size"]} px left out '
                      'of training')
        elif im['id'] not in usable:
            skips.add('images_without_boxes', im['file_name'], 'images kept without a usable box')


def check_coco(ds, with_mask: bool, pool) -> tuple:
    """(summary, errors, skips) of one COCO annotation file and its image folder."""
    errors, skips = Found(), Found()
    try:
        with open(ds.ann_file) as f:
            data = json.load(f)
    except ValueError as e:  # a cut or non-JSON file: name it (json's own message names only line and column)
        raise DataError(f'preflight: {ds.ann_file}: not a JSON file ({e}); expected COCO instances json '
                        f'({", ".join(TOP_KEYS)})') from None
    coco_fields(data, ds.metainfo['classes'], with_mask, errors)
    if not errors.kinds:
        coco_skips(data, ds, skips)
    images = data.get('images') if isinstance(data, dict) and isinstance(data.get('images'), list) else []
    paths = [osp.join(ds.data_prefix.get('img', ''), im['file_name']) for im in images
             if isinstance(im, dict) and isinstance(im.get('file_name'), str)]
    for path, there in zip(paths, pool.map(osp.exists, paths)):
        if not there:
            errors.add('missing_image_files', path, 'image files missing')
    summary = dict(kind='coco', file=ds.ann_file, images=len(images), annotations=len(data.get('annotations') or [])
                   if isinstance(data, dict) else 0, **errors.counts(), **skips.counts())
    return summary, errors, skips


# ------------------------------------------------------------------------------------------------ ADE20K & co.
def label_values(path: str):
    """Distinct values of a label map as mmseg decodes it (pillow, 'unchanged', squeezed), or why it cannot be."""
    from PIL import Image
    try:
        with Image.open(path) as img:
            array = np.asarray(img).squeeze()
    except Exception as e:  # noqa: BLE001 - any decoder failure is reported by name
        return f'unreadable ({type(e).__name__}: {e})'
    if array.ndim != 2:
        return f'shape {tuple(array.shape)}, not a single-channel map'
    if array.dtype == np.uint8:
        return np.flatnonzero(np.bincount(array.ravel(), minlength=256)).tolist()
    return np.unique(array).tolist()


def valid_values(ds) -> list:
    """Raw uint8 values that mmseg's LoadAnnotations maps to a class index or to ignore_index."""
    raw = np.arange(256, dtype=np.uint8)
    mapped = raw.copy()
    if ds.reduce_zero_label:  # mmseg: 0 -> 255, then -1, then 254 -> 255
        mapped[mapped == 0] = 255
        mapped = mapped - 1
        mapped[mapped == 254] = 255
    copy = mapped.copy()
    for old, new in (ds.label_map or {}).items():
        mapped[copy == old] = new
    ok = (mapped == ds.ignore_index) | (mapped < len(ds.metainfo['classes']))
    return raw[ok].tolist()


def spans(values: list) -> str:
    out, start = [], None
    for i, v in enumerate(values):
        start = v if start is None else start
        if i + 1 == len(values) or values[i + 1] != v + 1:
            out.append(f'{start}' if start == v else f'{start}..{v}')
            start = None
    return ', '.join(out)


def check_seg(ds, cache: dict, pool) -> tuple:
    """(summary, errors, skips) of one segmentation split: every image has a label map whose values are valid."""
    errors, skips = Found(), Found()
    pairs = ds.load_data_list()
    seg_dir = ds.data_prefix.get('seg_map_path', '')
    labels = [d['seg_map_path'] for d in pairs if 'seg_map_path' in d]
    for d, img_there, seg_there in zip(pairs, pool.map(osp.exists, [d['img_path'] for d in pairs]),
                                       pool.map(osp.exists, [d.get('seg_map_path', '') for d in pairs])):
        if not img_there:
            errors.add('missing_images', d['img_path'], 'listed images missing')
        elif not seg_there:
            errors.add('images_without_label', d['img_path'], f'images without a label map in {seg_dir}')
    if osp.isdir(seg_dir):
        expected = set(labels)
        for folder, _, files in os.walk(seg_dir):
            for name in sorted(f for f in files if f.endswith(ds.seg_map_suffix)):
                if osp.join(folder, name) not in expected:
                    skips.add('labels_without_image', osp.join(folder, name), 'label maps without an image, not used')
    stats = {p: os.stat(p) for p in labels if osp.exists(p)}
    todo = [p for p, st in stats.items() if cache.get(p, [None] * 2)[:2] != [st.st_size, st.st_mtime_ns]]
    start = time.perf_counter()
    for path, values in zip(todo, pool.map(label_values, todo)):
        cache[path] = [stats[path].st_size, stats[path].st_mtime_ns, values]
    seconds = time.perf_counter() - start
    valid, n = valid_values(ds), len(ds.metainfo['classes'])
    why = f'{type(ds).__name__}: {n} classes, ignore_index={ds.ignore_index}, reduce_zero_label={ds.reduce_zero_label}'
    why += f': raw 0 is ignored, 1..{n} are the classes' if ds.reduce_zero_label else ''
    for path in stats:
        values = cache[path][2]
        if isinstance(values, str):
            errors.add('unusable_labels', f'{path}: {values}', 'label maps that cannot be used')
        elif set(values) - set(valid):
            errors.add('labels_out_of_range', f'{path}: {spans(sorted(set(values) - set(valid)))}',
                       f'label maps with values outside {spans(valid)} ({why})')
    summary = dict(kind='seg', file=seg_dir, images=len(pairs), label_maps=len(stats), scanned=len(todo),
                   cached=len(stats) - len(todo), scan_seconds=round(seconds, 3),
                   files_per_second=round(len(todo) / seconds, 1) if todo and seconds else None,
                   **errors.counts(), **skips.counts())
    return summary, errors, skips


# ------------------------------------------------------------------------------------------------------ entry
def with_mask(ds_cfg: dict) -> bool:
    return any(isinstance(t, dict) and str(t.get('type')).endswith('LoadAnnotations') and t.get('with_mask')
               for t in ds_cfg.get('pipeline', []))


def check(cfg, use_cache: bool = True, splits=('train', 'val')) -> dict:
    """Check the datasets of cfg's dataloaders of `splits` (training: train and val, which the runner builds);
    {split: [summary, ...]}. Skips are logged as warnings; problems raise DataError after every dataset was read.
    Only rank 0 (env RANK) checks."""
    if int(os.environ.get('RANK', '0')) != 0:
        return {}
    cache_file = osp.join(cfg.work_dir, CACHE) if use_cache and cfg.get('work_dir') else None
    cache = {}
    if cache_file and osp.isfile(cache_file):
        try:
            with open(cache_file) as f:
                cache = json.load(f).get('label_maps', {})
        except (ValueError, AttributeError):  # not ours or damaged: rescan, and rewrite it below
            print_log(f'preflight: {cache_file} is not a cache this tool wrote; rescanning', logger='current',
                      level=logging.WARNING)
    result, problems, done = {}, [], {}
    with ThreadPoolExecutor(max_workers=min(32, 4 * (os.cpu_count() or 1))) as pool:
        for split in splits:
            loader = cfg.get(f'{split}_dataloader') or {}
            for ds_cfg in leaf_datasets(loader.get('dataset')):
                kind, ds = lazy_dataset(ds_cfg, cfg.get('default_scope'))
                if kind is None:
                    continue
                key = (kind, ds.ann_file, json.dumps(ds.data_prefix, sort_keys=True), ds.test_mode)
                if key not in done:
                    done[key] = (check_coco(ds, with_mask(ds_cfg), pool) if kind == 'coco'
                                 else check_seg(ds, cache, pool))
                    summary, errors, skips = done[key]
                    if skips.kinds:
                        print_log(f'preflight: {summary["file"]}: ' + '; '.join(skips.lines()), logger='current',
                                  level=logging.WARNING)
                    if errors.kinds:
                        problems += [f'{summary["file"]}:'] + errors.block()
                result.setdefault(split, []).append(done[key][0])
    if cache_file and cache:
        os.makedirs(cfg.work_dir, exist_ok=True)
        tmp = f'{cache_file}.tmp{os.getpid()}'
        with open(tmp, 'w') as f:
            json.dump(dict(version=1, label_maps=cache), f)
        os.replace(tmp, cache_file)
    if problems:
        raise DataError(f'preflight: the data of {getattr(cfg, "filename", "the config")} has problems (fix them, or '
                        'train anyway with --no-preflight):\n' + '\n'.join(problems))
    return result
