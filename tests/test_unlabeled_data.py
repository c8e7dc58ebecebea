"""FCMAE on any unlabeled images: a nested folder (any depth, every format PIL opens, no class folders) or a list
file (paths relative to it or absolute), unreadable ones skipped and counted; one real FCMAE iteration on each
through tools/train.py; ImageNet's class folders read as before."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pretrain.data import ImageFolderDataset, UnlabeledImageDataset

ROOT = Path(__file__).resolve().parents[1]
EVAL = dict(type='eval', size=32)
RNG = np.random.default_rng(0)
NESTED = ['a.jpg', 'b.PNG', 'x/c.webp', 'x/y/d.tif', 'x/y/z/e.bmp', 'x/y/z/f.gif', 'w/g.jpeg', 'w/h.ppm']


@pytest.fixture(scope='module')
def photos(tmp_path_factory) -> Path:
    """8 readable images in 6 formats at depths 0-3 (non-square), a corrupt one, a hidden one, a text file."""
    root = tmp_path_factory.mktemp('photos')
    for i, name in enumerate(NESTED):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(RNG.integers(0, 256, (64 + 16 * i, 96, 3), dtype=np.uint8)).save(root / name)
    (root / 'x' / 'broken.jpg').write_bytes(b'\xff\xd8\xff\xe0 not a JPEG')
    (root / '.hidden.jpg').write_bytes(b'junk')  # dot-files (e.g. macOS '._*') are not images
    (root / 'x' / 'notes.txt').write_text('not an image')
    return root


def test_nested_folder_any_format(photos):
    ds = UnlabeledImageDataset(str(photos), split=None, pipeline=EVAL)
    names = [os.path.relpath(p, photos) for p, _ in ds.samples]
    assert names == ['a.jpg', 'b.PNG', 'w/g.jpeg', 'w/h.ppm', 'x/broken.jpg', 'x/c.webp', 'x/y/d.tif', 'x/y/z/e.bmp',
                     'x/y/z/f.gif']  # sorted folder by folder; broken.jpg is found, then skipped when read
    samples = [ds[i] for i in range(len(ds))]
    assert set(samples[0]) == {'inputs'} and samples[0]['inputs'].shape == (3, 32, 32)
    assert ds.skipped == 1 and (samples[4]['inputs'] == samples[5]['inputs']).all()  # c.webp stands in


def test_list_file_relative_and_absolute(photos, tmp_path):
    lst = tmp_path / 'lists' / 'train.txt'
    lst.parent.mkdir()
    lst.write_text(f'{os.path.relpath(photos / "a.jpg", lst.parent)}\n\n{photos / "x/y/d.tif"}\nmissing.png\n'
                   f'{photos / "w/g.jpeg"}\n')
    ds = UnlabeledImageDataset(str(lst), pipeline=EVAL)
    assert [Path(p).resolve() for p, _ in ds.samples] == [photos / 'a.jpg', photos / 'x/y/d.tif',
                                                          (lst.parent / 'missing.png').resolve(), photos / 'w/g.jpeg']
    assert [ds[i]['inputs'].shape for i in range(4)] == [(3, 32, 32)] * 4 and ds.skipped == 1  # missing: skipped


def test_imagenet_folders_and_clear_errors(photos, tmp_path):
    for cls in ('n01', 'n02'):
        (tmp_path / 'train' / cls).mkdir(parents=True)
        for i in range(2):
            pixels = RNG.integers(0, 256, (40, 40, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / 'train' / cls / f'{i}.JPEG')
    unlabeled = UnlabeledImageDataset(str(tmp_path), 'train', pipeline=EVAL)
    labeled = ImageFolderDataset(str(tmp_path), 'train', pipeline=EVAL)
    assert [p for p, _ in unlabeled.samples] == [p for p, _ in labeled.samples]  # same images, same order
    with pytest.raises(FileNotFoundError, match=r'photos\d*/train: no such folder or list file.*split=None'):
        UnlabeledImageDataset(str(photos), 'train', pipeline=EVAL)
    (tmp_path / 'empty').mkdir()
    with pytest.raises(ValueError, match=r'empty: no images found'):
        UnlabeledImageDataset(str(tmp_path / 'empty'), None, pipeline=EVAL)


TINY = ['train_dataloader.dataset.pipeline.size=64', 'train_dataloader.batch_size=4', 'model.decoder_embed_dim=64',
        'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False', 'train_cfg.max_epochs=1',
        'optim_wrapper.accumulative_counts=1', 'default_hooks.logger.interval=1', 'param_scheduler.0.end=1',
        'param_scheduler.1.begin=0']


@pytest.mark.parametrize('source', ['folder', 'list'])
def test_one_fcmae_iteration_through_the_real_config(photos, tmp_path, source):
    if source == 'folder':
        options = [f'data_root={photos}', 'train_dataloader.dataset.split=None']
    else:
        lst = tmp_path / 'train.txt'
        lst.write_text(''.join(f'{photos / n}\n' for n in ['x/broken.jpg'] + NESTED))
        options = [f'data_root={lst}']
    result = subprocess.run([sys.executable, 'tools/train.py', 'pretrain/configs/fcmae_cnx2_atto.py', '--work-dir',
                             str(tmp_path / 'work'), '--cfg-options', *options, *TINY], cwd=ROOT, capture_output=True,
                            text=True, timeout=300, env={**os.environ, 'OMP_NUM_THREADS': '1'})
    assert result.returncode == 0, result.stderr[-3000:]
    logs = [json.loads(line) for f in (tmp_path / 'work').glob('*/vis_data/scalars.json')
            for line in f.read_text().splitlines()]
    assert len(logs) == 2 and all(np.isfinite(r['loss']) for r in logs)  # 9 files, batch 4, drop_last: 2 iterations
    assert logs[-1]['skipped_images'] == 1 and (tmp_path / 'work' / 'epoch_1.pth').is_file()
