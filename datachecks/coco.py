"""COCO instance annotations: the json is read once; its fields are checked (mmdet reads them without a check), then
mmdet's own CocoDataset.load_data_list / parse_data_info / filter_data run on the same parsed dict, and what they
leave out is named and counted."""
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
        if not (isinstance(box, list) and len(box) == 4 and all(isinstance(v, (int, float)) for v in box)):
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


def mmdet_parse(ds, data: dict) -> tuple:
    """(data_list, kept data_list, the COCO index) of mmdet's own CocoDataset code on the parsed json: its COCO api
    is handed the dict instead of rereading the file (an attribute of this dataset object only)."""
    from mmdet.datasets.api_wrappers import COCO
    coco = COCO()  # empty, then indexed from the dict, as pycocotools' loadRes does
    coco.dataset = data
    coco.createIndex()
    coco.img_ann_map, coco.cat_img_map = coco.imgToAnns, coco.catToImgs  # the aliases mmdet's COCO.__init__ sets
    ds.COCOAPI = lambda ann_file: coco
    ds.data_list = ds.load_data_list()  # mmdet: cat_ids, cat2label, cat_img_map, parse_data_info per image
    return ds.data_list, ds.filter_data(), coco


def why_dropped(ann: dict, img: dict, cat_ids) -> tuple:
    """(kind, text) naming why parse_data_info left a box out, in mmdet's order (zero size named before overlap)."""
    x, y, w, h = ann['bbox']
    if ann.get('ignore', False):
        return 'ignored_boxes', "boxes flagged 'ignore' skipped (ann ids)"
    if ann['area'] <= 0 or w < 1 or h < 1:
        return 'zero_size_boxes', 'boxes of zero size (width or height < 1 px, or area <= 0) skipped (ann ids)'
    if max(0, min(x + w, img['width']) - max(x, 0)) * max(0, min(y + h, img['height']) - max(y, 0)) == 0:
        return 'outside_boxes', 'boxes outside their image skipped (ann ids)'
    if ann['category_id'] not in cat_ids:
        return 'other_class_boxes', "boxes of categories outside the config's classes skipped (ann ids)"
    return 'other_dropped_boxes', "boxes mmdet's parse_data_info left out (ann ids)"


def coco_skips(ds, data: dict, skips: Found):
    """What mmdet's parse_data_info and filter_data leave out of `data`, named and counted."""
    data_list, kept, coco = mmdet_parse(ds, data)
    for info in data_list:
        img, instances, j = coco.imgs[info['img_id']], info['instances'], 0
        for ann in coco.imgToAnns[info['img_id']]:  # parse_data_info keeps boxes in order: match them one by one
            x, y, w, h = ann['bbox']
            if j < len(instances) and instances[j]['bbox'] == [x, y, x + w, y + h] \
                    and instances[j]['bbox_label'] == ds.cat2label.get(ann['category_id']):
                j += 1
            else:
                kind, text = why_dropped(ann, img, ds.cat_ids)
                skips.add(kind, ann['id'], text)
    kept_ids = {info['img_id'] for info in kept}
    in_classes = set().union(*(ds.cat_img_map[c] for c in ds.cat_ids)) if ds.cat_ids else set()
    filter_empty = not ds.test_mode and (ds.filter_cfg or {}).get('filter_empty_gt', False)
    for info in data_list:
        name = coco.imgs[info['img_id']]['file_name']
        if info['img_id'] not in kept_ids and filter_empty and info['img_id'] not in in_classes:
            skips.add('empty_images', name, 'images without annotations left out of training by filter_empty_gt')
        elif info['img_id'] not in kept_ids:
            skips.add('small_images', name, f'images under min_size={ds.filter_cfg.get("min_size")} px left out of '
                      'training')
        elif not any(inst['ignore_flag'] == 0 for inst in info['instances']):
            skips.add('images_without_boxes', name, 'images kept without a usable box')


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
