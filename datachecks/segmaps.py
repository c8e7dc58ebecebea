"""Segmentation label maps (ADE20K and other mmseg datasets): every image has a label map whose values mmseg's
LoadAnnotations maps to a class or to ignore_index. Scans are cached by (size, mtime_ns) in the caller's dict."""
import os
import os.path as osp
import tempfile
import time

import numpy as np
from PIL import Image

from .found import Found, missing


def label_values(path: str):
    """Distinct values of a label map as mmseg decodes it (pillow, 'unchanged', squeezed), or why it cannot be."""
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
    """Raw uint8 values that mmseg's own LoadAnnotations maps to a class index or to ignore_index: it decodes a label
    map holding every value 0..255 with the dataset's reduce_zero_label and label_map."""
    from mmseg.datasets.transforms import LoadAnnotations
    with tempfile.TemporaryDirectory() as tmp:
        path = osp.join(tmp, 'all_values.png')
        Image.fromarray(np.arange(256, dtype=np.uint8).reshape(16, 16)).save(path)
        results = dict(seg_map_path=path, reduce_zero_label=ds.reduce_zero_label, label_map=ds.label_map,
                       seg_fields=[])
        mapped = LoadAnnotations()(results)['gt_seg_map'].ravel()  # reduce_zero_label from results
    ok = (mapped == ds.ignore_index) | (mapped < len(ds.metainfo['classes']))
    return np.flatnonzero(ok).tolist()


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
    absent = missing([d['img_path'] for d in pairs] + [d.get('seg_map_path', '') for d in pairs], pool)
    for d in pairs:
        if d['img_path'] in absent:
            errors.add('missing_images', d['img_path'], 'listed images missing')
        elif d.get('seg_map_path', '') in absent:
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
