"""COCO instance annotations: the json is read once; its fields are checked (mmdet reads them without a check), then
what mmdet's CocoDataset.parse_data_info / filter_data would leave out is named and counted in one pass with their
rules, without building mmdet's index and data list (the dataset build does that once more itself)."""
import json
import os.path as osp

from .found import DataError, Found, missing

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
GOOD_BOX = [0, 0, 0, 0]  # what a record without 'bbox' is checked as (its absence is reported once, as missing)


def section_fields(records: list, section: str, keys: dict, errors: Found):
    """Each record of one top-level list is an object holding `keys`, with a unique id (and a 4-number bbox)."""
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
        box = rec.get('bbox', GOOD_BOX)
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


def mmdet_cat_ids(data: dict, classes) -> list:
    """mmdet's CocoDataset.cat_ids: ids of the categories named in `classes`, in the json's order (pycocotools
    getCatIds(catNms=classes); every category when classes is empty)."""
    return [c['id'] for c in data['categories'] if not classes or c['name'] in classes]


def coco_skips(ds, data: dict, skips: Found):
    """What mmdet's CocoDataset.parse_data_info and filter_data leave out of checked `data`, named and counted, in one
    pass over the annotations with mmdet's own rules and arithmetic (tests/test_fault_annotations.py holds the result
    to mmdet's own CocoDataset): no pycocotools index and no data_list, which cost as much as mmdet's own load."""
    cat_ids = set(mmdet_cat_ids(data, ds.metainfo['classes']))
    images = {im['id']: im for im in data['images']}
    order = {img_id: i for i, img_id in enumerate(images)}  # mmdet walks images in the json's order
    dropped, in_classes, with_box = [], set(), set()
    for i, ann in enumerate(data['annotations']):
        img, cat = images[ann['image_id']], ann['category_id']
        if cat in cat_ids:
            in_classes.add(ann['image_id'])  # pycocotools' catToImgs: any annotation of the class, kept or not
        x, y, w, h = ann['bbox']
        if ann.get('ignore', False):
            dropped.append((order[ann['image_id']], i, 'ignored_boxes', "boxes flagged 'ignore' skipped (ann ids)"))
        elif ann['area'] <= 0 or w < 1 or h < 1:  # named before 'outside': a zero-size box has no overlap either
            dropped.append((order[ann['image_id']], i, 'zero_size_boxes',
                            'boxes of zero size (width or height < 1 px, or area <= 0) skipped (ann ids)'))
        elif max(0, min(x + w, img['width']) - max(x, 0)) * max(0, min(y + h, img['height']) - max(y, 0)) == 0:
            dropped.append((order[ann['image_id']], i, 'outside_boxes', 'boxes outside their image skipped (ann ids)'))
        elif cat not in cat_ids:
            dropped.append((order[ann['image_id']], i, 'other_class_boxes',
                            "boxes of categories outside the config's classes skipped (ann ids)"))
        elif not ann.get('iscrowd', False):
            with_box.add(ann['image_id'])
    for _, i, kind, text in sorted(dropped):  # in mmdet's order: image by image, then as listed
        skips.add(kind, data['annotations'][i]['id'], text)
    filtering = not ds.test_mode and ds.filter_cfg is not None  # filter_data keeps every image otherwise
    filter_empty = filtering and ds.filter_cfg.get('filter_empty_gt', False)
    for img_id, img in images.items():
        if filter_empty and img_id not in in_classes:
            skips.add('empty_images', img['file_name'], 'images without annotations left out of training by '
                      'filter_empty_gt')
        elif filtering and min(img['width'], img['height']) < ds.filter_cfg.get('min_size', 0):
            skips.add('small_images', img['file_name'], f'images under min_size={ds.filter_cfg.get("min_size")} px '
                      'left out of training')
        elif img_id not in with_box:
            skips.add('images_without_boxes', img['file_name'], 'images kept without a usable box')


def check_coco(ds, with_mask: bool, pool) -> tuple:
    """(summary, errors, skips) of one COCO annotation file and its image folder; the file is parsed once."""
    errors, skips = Found(), Found()
    try:
        with open(ds.ann_file) as f:
            data = json.load(f)
    except ValueError as e:  # a cut or non-JSON file: name it (json's own message names only line and column)
        raise DataError(f'preflight: {ds.ann_file}: not a JSON file ({e}); expected COCO instances json '
                        f'({", ".join(TOP_KEYS)})') from None
    coco_fields(data, ds.metainfo['classes'], with_mask, errors)
    if not errors.kinds:
        coco_skips(ds, data, skips)
    images = data.get('images') if isinstance(data, dict) and isinstance(data.get('images'), list) else []
    paths = [osp.join(ds.data_prefix.get('img', ''), im['file_name']) for im in images
             if isinstance(im, dict) and isinstance(im.get('file_name'), str)]
    absent = missing(paths, pool)
    for path in paths:
        if path in absent:
            errors.add('missing_image_files', path, 'image files missing')
    summary = dict(kind='coco', file=ds.ann_file, images=len(images), annotations=len(data.get('annotations') or [])
                   if isinstance(data, dict) else 0, **errors.counts(), **skips.counts())
    return summary, errors, skips
