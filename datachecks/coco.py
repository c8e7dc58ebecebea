"""COCO instance annotations: the json is read once; its fields are checked (mmdet reads them without a check), then
what mmdet's CocoDataset.parse_data_info / filter_data would leave out is named and counted in one vectorised pass
with their rules, without building mmdet's index and data list (the dataset build does that once more itself).

A well-formed file is parsed by msgspec into typed records (boxes as 4 floats, polygons left as bytes, records the
garbage collector need not track): several times faster than json, so the check adds little to mmdet's own parse. A
file that does not fit that shape is parsed again with json and checked record by record, which names every problem;
both end in the same coco_skips."""
import json
import os.path as osp
from itertools import chain
from operator import attrgetter
from typing import Any

import numpy as np

from .found import DataError, Found, missing
from .verdicts import cached_verdict, file_key, store_verdict

try:
    import msgspec
except ImportError:  # an environment set up without it: every file takes the json path, with the same result
    msgspec = None

IMAGE_KEYS = dict(id='a unique integer', file_name="the image's path under data_prefix img", width='pixels',
                  height='pixels')
ANN_KEYS = dict(id='a unique integer', image_id="the id of an entry of 'images'",
                category_id="the id of an entry of 'categories'", bbox='[x, y, width, height]: 4 numbers',
                area='a number of pixels', iscrowd='0 or 1')
MASK_KEYS = dict(segmentation='polygons [[x1, y1, ...], ...] or RLE {size, counts}, as the config loads masks')
CAT_KEYS = dict(id='a unique integer', name="the class name that metainfo.classes matches")
TOP_KEYS = dict(images='a list of {id, file_name, width, height}', annotations='a list of {id, image_id, '
                'category_id, bbox, area, iscrowd, segmentation}', categories='a list of {id, name}')
NUMBER = {int, float, bool}  # what json gives for a number (bool: isinstance(True, int) held before)
CHECKS_VERSION = 2  # part of a cached verdict's key: a change of the rules below must bump it


def section_fields(records: list, section: str, keys: dict, errors: Found):
    """Each record of one top-level list is an object holding `keys`, with a unique id (annotations: a 4-number
    bbox)."""
    seen, need = set(), keys.keys()
    for i, rec in enumerate(records):
        if not isinstance(rec, dict):
            errors.add(f'{section}_not_objects', f'{section}[{i}]', f'{section} entries that are not objects')
            continue
        if not need <= rec.keys() or ('segmentation' in need and not rec['segmentation']):
            for key, what in keys.items():
                if key not in rec or (key == 'segmentation' and not rec[key]):
                    errors.add(f'{section}_without_{key}', f'{section}[{i}] (id {rec.get("id")})',
                               f'{section} without {key!r} (expected {what})')
        box = rec.get('bbox', [0, 0, 0, 0]) if 'bbox' in keys else [0, 0, 0, 0]  # absent: reported once, above
        if not (type(box) is list and len(box) == 4 and NUMBER.issuperset(map(type, box))):
            errors.add('bad_bbox', f'{section}[{i}] (id {rec.get("id")}): {str(box)[:40]}',
                       f"annotations whose 'bbox' is not {ANN_KEYS['bbox']}")
        if 'id' in rec and rec['id'] in seen:
            errors.add(f'{section}_duplicate_id', f'{section}[{i}] (id {rec["id"]})', f'{section} with a duplicate id')
        seen.add(rec.get('id'))


def coco_fields(data, classes, with_mask: bool, errors: Found):
    """Keys, types and references that mmdet's CocoDataset and CocoMetric read without a check."""
    if not isinstance(data, dict):
        return errors.add('not_an_object', type(data).__name__, 'top level that is not an object')
    for key, what in TOP_KEYS.items():
        if not isinstance(data.get(key), list):
            errors.add(f'missing_{key}', key, f'top-level {key!r} missing or not a list (expected {what})')
    for section, keys in (('images', IMAGE_KEYS), ('categories', CAT_KEYS),
                          ('annotations', dict(ANN_KEYS, **(MASK_KEYS if with_mask else {})))):
        section_fields(data.get(section) or [], section, keys, errors)
    ids = {s: {r.get('id') for r in data.get(s) or [] if isinstance(r, dict)} for s in ('images', 'categories')}
    for key, section in (('image_id', 'images'), ('category_id', 'categories')):
        known = ids[section] if isinstance(data.get(section), list) else None
        for i, ann in enumerate(data.get('annotations') or [] if known is not None else []):
            if isinstance(ann, dict) and key in ann and ann[key] not in known:
                errors.add(f'unknown_{key}', f'annotations[{i}] (id {ann.get("id")}, {key} {ann[key]})',
                           f'annotations whose {key} is not in {section!r}')
    names = [c.get('name') for c in data.get('categories') or [] if isinstance(c, dict)]
    for name in classes if isinstance(data.get('categories'), list) else ():
        if names.count(name) != 1:  # mmdet's cat2label would shift the labels of every later class
            errors.add('classes_not_once_in_categories', f'{name!r} ({names.count(name)})',
                       "classes of the config not named by exactly one entry of 'categories' (labels would shift)")


if msgspec is not None:
    class Image(msgspec.Struct, gc=False):  # holds no container that could refer back: no cycle to collect
        id: int
        file_name: str
        width: float
        height: float

    class Annotation(msgspec.Struct, gc=False):
        id: int
        image_id: int
        category_id: int
        bbox: tuple[float, float, float, float]  # json numbers only (a bool is not a float here)
        area: float
        iscrowd: Any
        segmentation: list[msgspec.Raw] | dict[str, Any] = []  # polygons kept as bytes: mmdet parses them
        ignore: Any = False

    class Category(msgspec.Struct, gc=False):
        id: int
        name: str

    class Coco(msgspec.Struct):
        images: list[Image]
        annotations: list[Annotation]
        categories: list[Category]

    TYPED = msgspec.json.Decoder(Coco)


def typed(raw: bytes, classes, with_mask: bool):
    """The file as typed records when it has COCO's shape and none of coco_fields' problems, else None (the file is
    then checked by coco_fields, which names them)."""
    if msgspec is None:
        return None
    try:
        data = TYPED.decode(raw)
    except msgspec.DecodeError:  # not json, or a record of another shape
        return None
    ids = {s: values(getattr(data, s), 'id') for s in ('images', 'categories', 'annotations')}
    known = {s: set(v) for s, v in ids.items()}
    names = values(data.categories, 'name')
    if (any(len(known[s]) != len(v) for s, v in ids.items())
            or not known['images'].issuperset(values(data.annotations, 'image_id'))
            or not known['categories'].issuperset(values(data.annotations, 'category_id'))
            or any(names.count(name) != 1 for name in classes)
            or with_mask and not all(map(attrgetter('segmentation'), data.annotations))):
        return None
    return data


def values(records: list, key: str, default=None) -> list:
    """One field of every record, whether parsed as a dict (json) or as a typed record (msgspec)."""
    if records and isinstance(records[0], dict):
        return [r.get(key, default) for r in records]
    return list(map(attrgetter(key), records))


def mmdet_cat_ids(data, classes) -> list:
    """mmdet's CocoDataset.cat_ids: ids of the categories named in `classes`, in the json's order (pycocotools
    getCatIds(catNms=classes); every category when classes is empty)."""
    cats = data['categories'] if isinstance(data, dict) else data.categories
    return [i for i, name in zip(values(cats, 'id'), values(cats, 'name')) if not classes or name in classes]


def py_max(a, b):
    """Python's max(a, b) elementwise (a unless b > a: NaN as Python treats it, not as np.maximum)."""
    return np.where(b > a, b, a)


def py_min(a, b):
    return np.where(b < a, b, a)


def coco_skips(ds, data, skips: Found):
    """What mmdet's CocoDataset.parse_data_info and filter_data leave out of checked `data` (a dict or typed records),
    named and counted with mmdet's own rules and arithmetic, vectorised (tests/test_fault_annotations.py holds the
    result to mmdet's own CocoDataset): no pycocotools index and no data_list, which cost as much as mmdet's load."""
    images, anns = (data['images'], data['annotations']) if isinstance(data, dict) else (data.images, data.annotations)
    img_ids, n = values(images, 'id'), len(anns)
    order = {img_id: i for i, img_id in enumerate(img_ids)}  # mmdet walks images in the json's order
    pos = np.fromiter(map(order.__getitem__, values(anns, 'image_id')), np.int64, n)
    width, height = (np.array(values(images, k), np.float64)[pos] for k in ('width', 'height'))
    x, y, w, h = np.fromiter(chain.from_iterable(values(anns, 'bbox')), np.float64, 4 * n).reshape(n, 4).T
    area = np.fromiter(values(anns, 'area'), np.float64, n)
    ignored = np.fromiter(map(bool, values(anns, 'ignore', False)), bool, n)
    crowd = np.fromiter(map(bool, values(anns, 'iscrowd', False)), bool, n)
    cat_ids = set(mmdet_cat_ids(data, ds.metainfo['classes']))
    in_classes = np.fromiter(map(cat_ids.__contains__, values(anns, 'category_id')), bool, n)
    inter_w = py_max(0, py_min(x + w, width) - py_max(x, 0))
    inter_h = py_max(0, py_min(y + h, height) - py_max(y, 0))
    kinds = [(ignored, 'ignored_boxes', "boxes flagged 'ignore' skipped (ann ids)"),  # in mmdet's order of tests
             ((area <= 0) | (w < 1) | (h < 1), 'zero_size_boxes',  # named before 'outside': no overlap either
              'boxes of zero size (width or height < 1 px, or area <= 0) skipped (ann ids)'),
             (inter_w * inter_h == 0, 'outside_boxes', 'boxes outside their image skipped (ann ids)'),
             (~in_classes, 'other_class_boxes', "boxes of categories outside the config's classes skipped (ann ids)")]
    kind, left = np.full(n, -1), np.ones(n, bool)
    for k, (hit, _, _) in enumerate(kinds):
        kind[left & hit] = k
        left &= ~hit
    dropped = np.flatnonzero(kind >= 0)
    ann_ids = values(anns, 'id')
    for i in dropped[np.lexsort((dropped, pos[dropped]))].tolist():  # mmdet's order: image by image, then as listed
        skips.add(kinds[kind[i]][1], ann_ids[i], kinds[kind[i]][2])
    has_class, has_box = np.zeros(len(images), bool), np.zeros(len(images), bool)
    has_class[pos[in_classes]] = True  # pycocotools' catToImgs: any annotation of the class, kept or not
    has_box[pos[left & ~crowd]] = True
    filtering = not ds.test_mode and ds.filter_cfg is not None  # filter_data keeps every image otherwise
    filter_empty = filtering and ds.filter_cfg.get('filter_empty_gt', False)
    min_size = ds.filter_cfg.get('min_size', 0) if filtering else None
    names = values(images, 'file_name')
    for i, (w_i, h_i) in enumerate(zip(values(images, 'width'), values(images, 'height'))):
        if filter_empty and not has_class[i]:
            skips.add('empty_images', names[i], 'images without annotations left out of training by filter_empty_gt')
        elif filtering and min(w_i, h_i) < min_size:
            skips.add('small_images', names[i], f'images under min_size={min_size} px left out of training')
        elif not has_box[i]:
            skips.add('images_without_boxes', names[i], 'images kept without a usable box')


def check_coco(ds, with_mask: bool, pool, cache: dict | None = None) -> tuple:
    """(summary, errors, skips) of one COCO annotation file and its image folder; the file is parsed once, or not at
    all when `cache` holds the verdict for it as it is now (its image files are looked for every time)."""
    inputs = dict(version=CHECKS_VERSION, classes=list(ds.metainfo['classes']), with_mask=with_mask,
                  test_mode=ds.test_mode, filter_cfg=ds.filter_cfg)
    stat = file_key(ds.ann_file)  # before reading: a file changed while it is read is checked again next time
    verdict = cached_verdict(cache, ds.ann_file, stat, inputs)
    if verdict is None:
        verdict = parse_and_check(ds, with_mask)
        store_verdict(cache, ds.ann_file, stat, inputs, verdict)
    counts, errors, skips, names = verdict
    paths = [osp.join(ds.data_prefix.get('img', ''), name) for name in names]
    absent = missing(paths, pool)
    for path in paths:
        if path in absent:
            errors.add('missing_image_files', path, 'image files missing')
    summary = dict(kind='coco', file=ds.ann_file, **counts, **errors.counts(), **skips.counts())
    return summary, errors, skips


def parse_and_check(ds, with_mask: bool) -> tuple:
    """({images, annotations}, errors, skips, the images' file names) of the file: typed when it fits, else json."""
    errors, skips = Found(), Found()
    with open(ds.ann_file, 'rb') as f:
        raw = f.read()
    data = typed(raw, ds.metainfo['classes'], with_mask)
    if data is None:
        try:
            data = json.loads(raw)
        except ValueError as e:  # a cut or non-JSON file: name it (json's own message names only line and column)
            raise DataError(f'preflight: {ds.ann_file}: not a JSON file ({e}); expected COCO instances json '
                            f'({", ".join(TOP_KEYS)})') from None
        coco_fields(data, ds.metainfo['classes'], with_mask, errors)
        data = data if isinstance(data, dict) else {}
    del raw
    if not errors.kinds:
        coco_skips(ds, data, skips)
    if not isinstance(data, dict):  # typed records: checked whole
        names, counts = values(data.images, 'file_name'), dict(images=len(data.images), annotations=len(
            data.annotations))
    else:
        images = data['images'] if isinstance(data.get('images'), list) else []
        names = [im['file_name'] for im in images if isinstance(im, dict) and isinstance(im.get('file_name'), str)]
        counts = dict(images=len(images), annotations=len(data['annotations']) if isinstance(
            data.get('annotations'), list) else 0)
    return counts, errors, skips, names
