"""The toy datasets read back as the real formats: pycocotools / mmdet for COCO, mmseg for ADE20K, ImageFolder."""
import re
from pathlib import Path

import numpy as np
import pytest
from mmcv.transforms import LoadImageFromFile
from mmdet.datasets import CocoDataset
from mmdet.datasets.transforms import LoadAnnotations
from mmseg.datasets import ADE20KDataset
from PIL import Image
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from torchvision.datasets import ImageFolder

from tools.make_toy_data import main
from toydata import PROFILES, ade20k, coco_instances, imagenet_folder, unlabeled
from toydata.generate import _polygons

FORMATS = ('polygon', 'rle', 'mixed')


@pytest.fixture(scope='module')
def coco(tmp_path_factory):
    """One seed in every mask format: the scenes are the same, only the encoding differs."""
    root = tmp_path_factory.mktemp('coco')
    return {fmt: coco_instances(root / fmt, seed=1, mask_format=fmt) for fmt in FORMATS}


def _anns(summary, split='train'):
    api = COCO(summary[split]['ann_file'])
    return api, api.loadAnns(sorted(api.anns))


def test_coco_json_loads_with_pycocotools(coco):
    for split, n in (('train', 8), ('val', 4)):
        api, anns = _anns(coco['polygon'], split)
        assert {k: c['name'] for k, c in api.cats.items()} == {1: 'circle', 2: 'square', 3: 'triangle'}
        assert len(api.imgs) == n and len(anns) == coco['polygon'][split]['annotations'] >= n
        for img in api.imgs.values():
            assert Image.open(Path(coco['polygon'][split]['img_dir']) / img['file_name']).size == (128, 96)
    train_ids = set(COCO(coco['polygon']['train']['ann_file']).imgs)
    assert not train_ids & set(COCO(coco['polygon']['val']['ann_file']).imgs)  # file names are unique across splits


@pytest.mark.parametrize('fmt', FORMATS)
def test_masks_match_boxes_and_areas(coco, fmt):
    api, anns = _anns(coco[fmt])
    assert {type(a['segmentation']) for a in anns} == {'polygon': {list}, 'rle': {dict}, 'mixed': {list, dict}}[fmt]
    cover = {}  # image id -> how many annotations claim each pixel
    for ann in anns:
        mask = api.annToMask(ann)
        ys, xs = np.nonzero(mask)
        box = [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
        np.testing.assert_allclose(ann['bbox'], box, atol=1)
        assert ann['area'] == pytest.approx(mask.sum(), rel=0.02) and ann['area'] >= 16 and ann['iscrowd'] == 0
        assert isinstance(ann['segmentation'], list) or isinstance(ann['segmentation']['counts'], str)
        cover[ann['image_id']] = cover.get(ann['image_id'], 0) + mask
    assert max(c.max() for c in cover.values()) == 1  # visible parts: an occluded pixel belongs to the top shape only


def test_polygons_rasterise_to_the_rle_masks(coco):
    """pycocotools' own RLE of the visible mask is the reference for the traced polygons."""
    api_p, polys = _anns(coco['polygon'])
    api_r, rles = _anns(coco['rle'])
    assert [(a['id'], a['bbox'], a['area']) for a in polys] == [(a['id'], a['bbox'], a['area']) for a in rles]
    for p, r in zip(polys, rles):
        np.testing.assert_array_equal(api_p.annToMask(p), api_r.annToMask(r))


def test_polygon_outline_keeps_holes_and_diagonal_touches():
    ring = np.zeros((12, 12), np.uint8)
    ring[1:11, 1:11], ring[4:8, 4:8] = 1, 0  # 10x10 square minus a 4x4 hole: 100 - 16 = 84 px
    noise = np.random.default_rng(0).random((20, 9, 13)) < 0.5  # holes, islands and diagonal touches galore
    for mask, area in ((ring, 84), (np.eye(3, dtype=np.uint8), 3), *((m, m.sum()) for m in noise)):
        rle = mask_utils.merge(mask_utils.frPyObjects(_polygons(mask), *mask.shape))
        assert mask_utils.area(rle) == area
        np.testing.assert_array_equal(mask_utils.decode(rle), mask)


def test_mmdet_coco_dataset_reads_masks(coco):
    summary = coco['mixed']
    ds = CocoDataset(data_root=summary['root'], ann_file='annotations/instances_train2017.json',
                     data_prefix=dict(img='train2017/'), metainfo=dict(classes=summary['classes']),
                     pipeline=[LoadImageFromFile(), LoadAnnotations(with_mask=True)])
    api, _ = _anns(summary)
    assert len(ds) == 8
    for i in range(len(ds)):
        out = ds[i]
        anns = api.loadAnns(api.getAnnIds(imgIds=out['img_id']))
        np.testing.assert_array_equal(out['gt_masks'].areas, [a['area'] for a in anns])
        boxes = np.reshape([[x, y, x + w, y + h] for x, y, w, h in (a['bbox'] for a in anns)], (-1, 4))
        np.testing.assert_array_equal(out['gt_bboxes'].tensor.numpy(), boxes)  # mmdet holds boxes as x1y1x2y2


def test_ade20k_layout_and_labels(tmp_path):
    s = ade20k(tmp_path / 'ade')
    seen = set()
    for split, n in (('training', 8), ('validation', 4)):
        assert len(s[split]) == n
        for img, png in s[split]:
            assert Path(img).stem == Path(png).stem and Path(img).parent.name == Path(png).parent.name == split
            label = Image.open(png)
            assert label.mode == 'L' and label.size == Image.open(img).size == (128, 96)
            seen |= set(np.unique(np.asarray(label)).tolist())
    assert seen == {0, 1, 3, 4, 13, 16, 21}  # other + default stuff (wall, sky, floor) + things (person, table, car)
    ds = ADE20KDataset(data_root=s['root'], pipeline=[],
                       data_prefix=dict(img_path='images/validation', seg_map_path='annotations/validation'))
    assert len(ds) == 4 and ds[0]['seg_map_path'] == s['validation'][0][1] and ds[0]['reduce_zero_label']


def test_imagenet_folder_counts(tmp_path):
    s = imagenet_folder(tmp_path / 'in', classes=3, train_per_class=5, val_per_class=2, size=48)
    assert s['classes'] == ['n00000000_circle', 'n00000001_square', 'n00000002_triangle']
    for split, n in (('train', 5), ('val', 2)):
        folders = sorted(p for p in (tmp_path / 'in' / split).iterdir())
        assert [p.name for p in folders] == s['classes'] and all(re.fullmatch(r'n\d{8}_\w+', p.name) for p in folders)
        assert [len(list(p.glob('*.JPEG'))) for p in folders] == [n] * 3
    ds = ImageFolder(str(tmp_path / 'in' / 'train'))
    assert ds.classes == s['classes'] and ds.targets == [0] * 5 + [1] * 5 + [2] * 5
    assert ds[0][0].size == (48, 48) and ds[0][0].mode == 'RGB'


@pytest.mark.parametrize('make', [imagenet_folder, coco_instances, ade20k, unlabeled])
def test_same_seed_gives_identical_bytes(tmp_path, make):
    make(tmp_path / 'a')
    make(tmp_path / 'b', seed=5)
    make(tmp_path / 'b')  # rewriting an existing toy folder is deterministic too
    make(tmp_path / 'c', seed=5)
    files = {d: {p.relative_to(tmp_path / d): p.read_bytes() for p in (tmp_path / d).rglob('*') if p.is_file()}
             for d in 'abc'}
    assert files['a'] == files['b'] and len(files['a']) > 10
    assert files['a'].keys() == files['c'].keys()
    assert any(files['a'][k] != files['c'][k] for k in files['a'] if k.suffix in ('.JPEG', '.jpg', '.png'))


def test_bad_input_raises_clear_errors(tmp_path):
    (tmp_path / 'keep.txt').write_text('not toy data')
    with pytest.raises(FileExistsError, match=f'{tmp_path.name} is not empty'):
        ade20k(tmp_path)
    with pytest.raises(ValueError, match="mask_format='bitmap'"):
        coco_instances(tmp_path / 'c', mask_format='bitmap')
    with pytest.raises(ValueError, match='classes_used'):
        ade20k(tmp_path / 'a', classes_used=(0, 1))
    with pytest.raises(SystemExit):
        main([str(tmp_path / 'cli'), '--size', '64'])


def test_cli_writes_all_three(tmp_path, capsys):
    main([str(tmp_path), '--size', '64x48', '--images', '2'])
    assert [line.split(':')[0] for line in capsys.readouterr().out.splitlines()] == ['imagenet', 'coco', 'ade20k']
    assert COCO(str(tmp_path / 'coco/annotations/instances_val2017.json')).imgs[3]['width'] == 64
    assert len(list((tmp_path / 'imagenet/val').rglob('*.JPEG'))) == 4  # 4 classes x (2 // 2)
    assert Image.open(next((tmp_path / 'imagenet/train').rglob('*.JPEG'))).size == (48, 48)
    assert len(list((tmp_path / 'ade20k/annotations/training').glob('*.png'))) == 2


def test_learn_profile_and_unlabeled_pool(tmp_path, capsys):
    """--profile learn: 128 x 128 scenes, up to 5 COCO objects, and a pool that FCMAE's dataset reads at any depth."""
    from pretrain.data import UnlabeledImageDataset
    main([str(tmp_path), '--profile', 'learn', '--images', '2', '--pool', '300'])
    assert [line.split(':')[0] for line in capsys.readouterr().out.splitlines()] == [
        'imagenet', 'coco', 'ade20k', 'unlabeled']
    assert Image.open(next((tmp_path / 'coco/train2017').glob('*.jpg'))).size == (128, 128)
    assert Image.open(next((tmp_path / 'imagenet/train').rglob('*.JPEG'))).size == (128, 128)
    assert sorted(p.name for p in (tmp_path / 'unlabeled').iterdir() if p.is_dir()) == ['part_000', 'part_001']
    pool = UnlabeledImageDataset(str(tmp_path / 'unlabeled'), split=None, pipeline=dict(type='fcmae', size=96))
    assert len(pool) == 300 and pool[299]['inputs'].shape == (3, 96, 96)
    assert PROFILES['learn']['coco']['max_objects'] == 5 and PROFILES['small']['unlabeled'] is None


def test_ablation_profile_classes_are_combinations(tmp_path):
    """--profile ablation: 24 shape x texture x layout classes at 128 px that ImageFolder reads, and a pool of the
    same scenes; the texture factor is visible (striped / checked objects vary far more than plain ones)."""
    from toydata.generate import COMBOS, _combo_scene
    main([str(tmp_path), '--profile', 'ablation', '--images', '2', '--pool', '5'])
    folder = ImageFolder(str(tmp_path / 'imagenet/train'))
    assert len(folder.classes) == 24 == len(COMBOS) and len(folder) == 48
    assert folder.classes[3].endswith('circle_stripes_pair') and Image.open(folder.imgs[0][0]).size == (128, 128)
    assert len(list((tmp_path / 'unlabeled').rglob('*.jpg'))) == 5
    rng = np.random.default_rng(0)
    centre = {t: [_combo_scene(rng, 64, COMBOS.index(('square', t, 'one')))[26:38, 26:38].std((0, 1)).mean()
                 for _ in range(20)]
              for t in ('plain', 'stripes', 'checker')}
    assert np.mean(centre['stripes']) > 2 * np.mean(centre['plain']) < np.mean(centre['checker'])
    with pytest.raises(ValueError, match="scene='dots'"):
        imagenet_folder(tmp_path / 'bad', scene='dots')
    with pytest.raises(ValueError, match='classes=25'):
        imagenet_folder(tmp_path / 'bad', classes=25, scene='combos')
