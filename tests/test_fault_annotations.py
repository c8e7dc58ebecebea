"""Hostile annotations caught by datachecks (tools/preflight.py) before any runner exists: COCO json with
missing fields or missing images is an error naming file, record and key; boxes and images that mmdet drops are named
and counted; an ADE20K label out of range stops tools/train.py naming the file and the value. docs/FAULTS.md."""
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import datachecks as preflight
from runtime import load_cfg
from tools import train
from toydata import ade20k, coco_instances

ROOT = Path(__file__).resolve().parents[1]
DET_CONFIG = str(ROOT / 'det_configs' / 'mask_rcnn_cnx2_a.py')
SEG_CONFIG = str(ROOT / 'seg_configs' / 'upernet_cnx2_a.py')

pytestmark = pytest.mark.usefixtures('one_thread')  # conftest.py



@pytest.fixture(scope='module')
def coco(tmp_path_factory, runs):
    """(config over toy COCO, the original train json, a writer of an edited train json)."""
    root = tmp_path_factory.mktemp('coco')
    coco_instances(root, train_images=4, val_images=1, size=(96, 64))
    ann = root / 'annotations' / 'instances_train2017.json'
    original = json.loads(ann.read_text())
    cfg = load_cfg(DET_CONFIG, train.parse_args(['x', '--cfg-options', *runs.det_toy_options(root)]).cfg_options,
                   str(root / 'work'), 'none')

    def write(edit):
        data = json.loads(json.dumps(original))
        edit(data)
        ann.write_text(json.dumps(data))
        return str(ann)
    yield cfg, original, write
    write(lambda data: None)


@pytest.mark.parametrize('where,key', [('annotations', 'bbox'), ('annotations', 'category_id'),
                                       ('annotations', 'segmentation'), ('annotations', 'iscrowd'),
                                       ('images', 'file_name'), ('images', 'height'), (None, 'categories')])
def test_coco_missing_field_is_named_before_training(coco, where, key):
    cfg, original, write = coco

    def drop(data):
        del (data[where][1] if where else data)[key]
    ann_file = write(drop)
    with pytest.raises(preflight.DataError) as error:
        preflight.check(cfg, use_cache=False)
    message = str(error.value)
    assert f'{ann_file}:\n' in message
    if where:
        record = f"{where}[1] (id {original[where][1]['id']})"
        expected = {**preflight.IMAGE_KEYS, **preflight.ANN_KEYS, **preflight.MASK_KEYS}[key]
        assert f"\n  1 {where} without {key!r} (expected {expected}):\n    {record}\n" in message + '\n'
    else:
        assert f"1 top-level 'categories' missing or not a list (expected {preflight.TOP_KEYS[key]}):\n    " \
            "categories" in message


def test_coco_every_problem_is_collected_and_counted(coco):
    cfg, original, write = coco
    n = len(original['annotations']) + 10

    def edit(data):
        data['annotations'] += [dict(a, id=1000 + i) for i, a in enumerate(data['annotations'][:1] * 10)]
        for ann in data['annotations']:
            del ann['bbox']
        data['annotations'][0]['category_id'] = 99
        data['images'][2]['file_name'] = 'nowhere.jpg'
        data['categories'][0]['name'] = 'hexagon'  # the config's 'circle' is gone: later labels would shift
    ann_file = write(edit)
    with pytest.raises(preflight.DataError) as error:
        preflight.check(cfg, use_cache=False)
    ids = [a['id'] for a in original['annotations']] + list(range(1000, 1010))
    assert str(error.value).splitlines()[1:] == [
        f'{ann_file}:', f"  {n} annotations without 'bbox' (expected [x, y, width, height]: 4 numbers):",
        *[f'    annotations[{i}] (id {ids[i]})' for i in range(10)], f'    ... and {n - 10} more',
        "  1 annotations whose category_id is not in 'categories':",
        f'    annotations[0] (id {ids[0]}, category_id 99)',
        "  1 classes of the config not named by exactly one entry of 'categories' (labels would shift):",
        "    'circle' (0)", '  1 image files missing:', f'    {cfg.data_root}/train2017/nowhere.jpg']


def test_coco_zero_size_boxes_and_empty_images_are_named_and_counted(coco, runs):
    """The counts equal what mmdet's own CocoDataset keeps, built here on the same file."""
    from mmdet.registry import DATASETS
    from mmengine.registry import init_default_scope
    cfg, original, write = coco
    per_image = {im['id']: [a for a in original['annotations'] if a['image_id'] == im['id']]
                 for im in original['images']}
    last = max(per_image, key=lambda i: len(per_image[i]))
    first = next(i for i in per_image if i != last)
    zero = per_image[last][:2]
    assert len(per_image[last]) >= 3

    def edit(data):
        anns = {a['id']: a for a in data['annotations']}
        anns[zero[0]['id']]['bbox'][2] = 0  # zero width
        anns[zero[1]['id']]['area'] = 0
        data['annotations'] = [a for a in data['annotations'] if a['image_id'] != first]  # an image without boxes
    ann_file = write(edit)
    result, log = runs.logged_warnings(preflight.check, cfg, False)
    empty = next(im['file_name'] for im in original['images'] if im['id'] == first)
    assert (f'preflight: {ann_file}: 2 boxes of zero size (width or height < 1 px, or area <= 0) skipped (ann ids): '
            f'{zero[0]["id"]}, {zero[1]["id"]}; 1 images without annotations left out of training by filter_empty_gt: '
            f'{empty}') in log
    summary = result['train'][0]
    assert (summary['zero_size_boxes'], summary['empty_images']) == (2, 1)
    assert summary['annotations'] == len(original['annotations']) - len(per_image[first])
    init_default_scope('mmdet')
    ds = DATASETS.build(dict(cfg.train_dataloader.dataset, pipeline=[]))
    kept = {ds.get_data_info(i)['img_id']: len(ds.get_data_info(i)['instances']) for i in range(len(ds))}
    assert len(kept) == summary['images'] - summary['empty_images']
    assert sum(kept.values()) == summary['annotations'] - summary['zero_size_boxes']
    dropped = ('zero_size_boxes', 'outside_boxes', 'ignored_boxes', 'other_class_boxes', 'other_dropped_boxes')
    assert sum(summary.get(k, 0) for k in dropped) == summary['zero_size_boxes']  # no box named that mmdet kept


def test_coco_one_pass_skips_equal_mmdets_own_dataset(coco, monkeypatch):
    """The preflight names what mmdet drops in one pass of its own; mmdet's CocoDataset, built on the same hostile
    file (boxes ignored, of zero size, outside, of other classes, crowds only; small and empty images; annotations
    not grouped by image), must keep exactly the rest."""
    from datachecks import found
    from datachecks.coco import coco_skips
    from mmdet.registry import DATASETS
    from mmengine.registry import init_default_scope
    cfg, original, write = coco
    rng = np.random.default_rng(1)

    def edit(data):
        data['categories'].append(dict(id=77, name='hexagon'))  # not a class of the config
        data['images'] = [dict(id=10 + i, file_name=f'{i}.jpg', width=int(rng.choice([20, 64, 96])),
                               height=int(rng.choice([30, 64]))) for i in range(40)]
        anns = []
        for j in range(400):
            img = data['images'][int(rng.integers(0, 36))]  # the last 4 images: no annotation
            x, y = (float(v) for v in rng.uniform(-20, 100, 2))
            w, h = (float(v) for v in rng.choice([0.5, 1.0, 7.25, 40.0], 2))
            ann = dict(id=5000 + j, image_id=img['id'], category_id=int(rng.choice([1, 2, 3, 77])), bbox=[x, y, w, h],
                       area=float(rng.choice([0, w * h])), iscrowd=int(rng.random() < .3),
                       segmentation=[[x, y, x + w, y, x + w, y + h]])
            if rng.random() < .1:
                ann['ignore'] = int(rng.random() < .5)
            anns.append(ann)
        data['annotations'] = anns
    data = json.loads(Path(write(edit)).read_text())
    monkeypatch.setattr(found, 'SHOW', 10 ** 6)  # every record, not the first 10
    skips = found.Found()
    _, lazy = preflight.lazy_dataset(cfg.train_dataloader.dataset, cfg.default_scope)
    coco_skips(lazy, data, skips)
    named = {k: records for k, (_, records, _) in skips.kinds.items()}
    boxes = ('ignored_boxes', 'zero_size_boxes', 'outside_boxes', 'other_class_boxes')
    dropped = {int(r) for k in boxes for r in named[k]}
    assert {*boxes, 'empty_images', 'small_images', 'images_without_boxes'} <= named.keys()  # all met
    left_out = set(named['empty_images'] + named['small_images'])
    init_default_scope('mmdet')
    ds = DATASETS.build(dict(cfg.train_dataloader.dataset, pipeline=[]))
    theirs = {ds.get_data_info(i)['img_id']: [(*inst['bbox'], inst['ignore_flag']) for inst in
                                              ds.get_data_info(i)['instances']] for i in range(len(ds))}
    by_id = {im['id']: im for im in data['images']}
    ours = {im['id']: [(a['bbox'][0], a['bbox'][1], a['bbox'][0] + a['bbox'][2], a['bbox'][1] + a['bbox'][3],
                        int(bool(a['iscrowd']))) for a in data['annotations']
                       if a['image_id'] == im['id'] and a['id'] not in dropped]
            for im in data['images'] if im['file_name'] not in left_out}
    assert ours == theirs  # the same images, the same boxes in the same order
    without = {by_id[i]['file_name'] for i, boxes in theirs.items() if not any(b[-1] == 0 for b in boxes)}
    assert set(named['images_without_boxes']) == without


# ----------------------------------------------------------------------------------------- ADE20K (mmseg 1.2)
@pytest.fixture
def toy_ade(tmp_path):
    data = ade20k(tmp_path / 'ade', train_images=4, val_images=2, size=(64, 48))
    return data, ['--cfg-options', f'data_root={data["root"]}', 'model.backbone.init_cfg=None']


def test_ade20k_label_out_of_range_stops_train_before_the_runner(toy_ade, tmp_path):
    data, opts = toy_ade
    bad = data['training'][2][1]
    label = np.asarray(Image.open(bad)).copy()
    label[5, 7] = 199
    Image.fromarray(label).save(bad)
    image, missing = data['validation'][1]
    Path(missing).unlink()  # and an image without its label map, in another split: both in one message
    work = tmp_path / 'work'
    with pytest.raises(preflight.DataError) as error:
        train.main([SEG_CONFIG, '--work-dir', str(work), *opts])
    assert (f'  1 label maps with values outside 0..150, 255 (ADE20KDataset: 150 classes, ignore_index=255, '
            f'reduce_zero_label=True: raw 0 is ignored, 1..150 are the classes):\n    {bad}: 199\n') in str(error.value)
    assert f'  1 images without a label map in {Path(missing).parent}:\n    {image}' in str(error.value)
    assert [p.name for p in work.iterdir()] == ['preflight_cache.json']  # no runner: no log, no checkpoint


def test_valid_label_values_follow_mmseg_load_annotations(toy_ade, tmp_path):
    """Independent reference: mmseg's LoadAnnotations on a label map holding every uint8 value."""
    from mmseg.datasets.transforms import LoadAnnotations
    from mmengine.registry import init_default_scope
    data, opts = toy_ade
    init_default_scope('mmseg')
    cfg = load_cfg(SEG_CONFIG, train.parse_args(['x', *opts]).cfg_options, str(tmp_path), 'none')
    _, ds = preflight.lazy_dataset(cfg.train_dataloader.dataset, 'mmseg')
    Image.fromarray(np.arange(256, dtype=np.uint8).reshape(16, 16)).save(tmp_path / 'all.png')
    out = LoadAnnotations()(dict(seg_map_path=str(tmp_path / 'all.png'), reduce_zero_label=True, seg_fields=[]))
    mapped = out['gt_seg_map'].ravel()
    assert preflight.valid_values(ds) == [v for v in range(256) if mapped[v] < 150 or mapped[v] == 255]


def test_label_scan_cache_rereads_only_changed_files(toy_ade, tmp_path):
    data, opts = toy_ade
    cfg = load_cfg(SEG_CONFIG, train.parse_args(['x', *opts]).cfg_options, str(tmp_path / 'work'), 'none')
    first = preflight.check(cfg)
    again = preflight.check(cfg)
    assert [(s['scanned'], s['cached']) for s in first['train'] + first['val']] == [(4, 0), (2, 0)]
    assert [(s['scanned'], s['cached']) for s in again['train'] + again['val']] == [(0, 4), (0, 2)]
    rgb = data['training'][0][1]
    Image.fromarray(np.zeros((48, 64, 3), np.uint8)).save(rgb)  # changed: rescanned, and now unusable
    with pytest.raises(preflight.DataError, match=rf'label maps that cannot be used:\n    {rgb}: shape \(48, 64, 3\)'):
        preflight.check(cfg)  # the cached verdict of the other files still holds
    cache = json.loads((tmp_path / 'work' / 'preflight_cache.json').read_text())['label_maps']
    assert len(cache) == 6 and cache[rgb][2].startswith('shape (48, 64, 3)')
