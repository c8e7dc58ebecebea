"""Data at cluster scale. ImageNet-sized image lists: the samples live in numpy arrays, so a forked loader worker
reading a whole epoch gains no private memory (a list of tuples is copied into it page by page); with a process group,
rank 0 alone walks the folder and every rank gets its samples, or its error. COCO: the preflight's verdict of a json
is cached until the file changes (a resumed run does not parse it again), and its fast typed parse gives the verdict
of the json path. benchmarks/scale.py measures both at train2017 / ImageNet size."""
import json
import os
import pickle
import re
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pretrain.data import PathTable, UnlabeledImageDataset

ROOT = Path(__file__).resolve().parents[1]
SMAPS = Path('/proc/self/smaps_rollup')


def private_dirty() -> int:
    """Bytes of this process's pages written since it was forked or started (copy-on-write copies included)."""
    fields = dict(line.split(':', 1) for line in SMAPS.read_text().splitlines()[1:])
    return int(fields['Private_Dirty'].split()[0]) * 1024


def growth_reading(samples) -> int:
    """Private memory a forked process gains by reading every sample once, as loader workers do over an epoch."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: read, report, leave without running the parent's atexit or pytest teardown
        code = 1
        try:
            before = private_dirty()
            for i in range(len(samples)):
                samples[i]
            os.write(write, str(private_dirty() - before).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write)
    _, status = os.waitpid(pid, 0)
    with os.fdopen(read) as f:
        report = f.read()
    assert status == 0 and report, 'the forked reader failed'
    return int(report)


@pytest.mark.skipif(not SMAPS.is_file() or not hasattr(os, 'fork'), reason='needs Linux /proc smaps_rollup')
def test_forked_reader_gains_no_memory(tmp_path):
    n = 200_000
    names = [f'n{i % 1000:08d}/n{i % 1000:08d}_{i}.JPEG' for i in range(n)]
    listing = tmp_path / 'train.txt'
    listing.write_text('\n'.join(names) + '\n')
    ds = UnlabeledImageDataset(str(listing), pipeline=dict(type='eval', size=32))
    assert len(ds) == n and ds.samples[n - 1] == (str(tmp_path / names[-1]), None)
    as_list = [(str(tmp_path / name), None) for name in names]  # what the dataset held before: a list of tuples
    list_growth, table_growth = growth_reading(as_list), growth_reading(ds.samples)
    assert list_growth > 10 * 2 ** 20  # the measurement sees copy-on-write: ~150 bytes per (path, None) tuple
    assert table_growth < 2 * 2 ** 20, f'{table_growth / 2 ** 20:.1f} MiB copied into the reader'


def test_path_table_round_trip():
    paths = ['/data/a/x.jpg', '/data/a/ü/y.png', os.fsdecode(b'/data/a/\xff.jpg'), '/data/b.jpg', '/data/a/x.jpg']
    table = PathTable(paths, [3, 1, 4, 1, 5])
    assert list(table) == list(zip(paths, [3, 1, 4, 1, 5])) and table.prefix == '/data/'
    assert table[-1] == ('/data/a/x.jpg', 5) and isinstance(table[0][1], int)
    with pytest.raises(IndexError):
        table[5]
    copy = pickle.loads(pickle.dumps(table))  # as broadcast to other ranks or sent to spawned workers
    assert list(copy) == list(table) and list(PathTable(['one.jpg'])) == [('one.jpg', None)]
    assert all(isinstance(v, np.ndarray) for v in vars(table).values() if not isinstance(v, str))


RANK_SCRIPT = '''
import json, sys, torch.distributed as dist
import pretrain.data as data
calls = []
find_images = data.find_images
data.find_images = lambda folder: calls.append(str(folder)) or find_images(folder)
dist.init_process_group('gloo')
ds = data.UnlabeledImageDataset(sys.argv[1], split=None, pipeline=dict(type='eval', size=32))
try:
    data.UnlabeledImageDataset(sys.argv[1] + '/absent', split=None)
    error = None
except FileNotFoundError as e:
    error = str(e)
print('RESULT ' + json.dumps(dict(rank=dist.get_rank(), walks=calls, samples=list(ds.samples), error=error)))
dist.destroy_process_group()
'''


def test_rank_zero_walks_once_and_shares(tmp_path):
    for name in ('b/2.png', 'a/1.jpg', 'a/z/3.jpg', 'c.jpg'):
        (tmp_path / 'images' / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / 'images' / name)
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    procs = [subprocess.Popen([sys.executable, '-c', RANK_SCRIPT, str(tmp_path / 'images')], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              env=dict(os.environ, RANK=str(rank), WORLD_SIZE='2', MASTER_ADDR='127.0.0.1',
                                       MASTER_PORT=str(port), OMP_NUM_THREADS='1', PYTHONPATH=str(ROOT)))
             for rank in range(2)]
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    results = [json.loads(next(line[7:] for line in out.splitlines() if line.startswith('RESULT '))) for out in outputs]
    assert [r['walks'] for r in results] == [[str(tmp_path / 'images')], []]  # rank 1 never walked
    expected = [[str(tmp_path / 'images' / n), None] for n in ('a/1.jpg', 'a/z/3.jpg', 'b/2.png', 'c.jpg')]
    assert results[0]['samples'] == results[1]['samples'] == expected
    assert results[0]['error'] == results[1]['error'] and 'absent: no such folder or list file' in results[1]['error']


# ------------------------------------------------------------------------------ COCO: the preflight's parse
@pytest.fixture
def toy_coco(tmp_path, runs):
    """(config over toy COCO with a work dir, its train json, a list for `counting`)."""
    from runtime import load_cfg
    from toydata import coco_instances
    from tools import train
    coco_instances(tmp_path / 'coco', train_images=4, val_images=1, size=(96, 64))
    cfg = load_cfg(str(ROOT / 'det_configs' / 'mask_rcnn_cnx2_a.py'), train.parse_args(
        ['x', '--cfg-options', *runs.det_toy_options(tmp_path / 'coco')]).cfg_options, str(tmp_path / 'work'), 'none')
    return cfg, tmp_path / 'coco' / 'annotations' / 'instances_train2017.json', []


def counting(monkeypatch, parsed: list):
    """Each parse of a json by the preflight appends its path to `parsed`."""
    from datachecks import coco
    parse = coco.parse_and_check
    monkeypatch.setattr(coco, 'parse_and_check', lambda ds, mask: parsed.append(ds.ann_file) or parse(ds, mask))


def test_coco_verdict_is_cached_until_the_file_changes(toy_coco, monkeypatch):
    """A repeated run does not parse the json again; a rewrite of the same size whose mtime was set back (cp -p,
    rsync -t) is parsed again: ctime moved, and the new verdict names the box the rewrite made zero-sized."""
    import datachecks
    cfg, ann, parsed = toy_coco
    counting(monkeypatch, parsed)
    first = datachecks.check(cfg, splits=('train',))
    again = datachecks.check(cfg, splits=('train',))
    assert parsed == [str(ann)] and again == first and 'zero_size_boxes' not in first['train'][0]
    text, before = ann.read_text(), ann.stat()
    area = re.search(r'"area": ([0-9.]+)', text)
    ann.write_text(text[:area.start(1)] + '0'.ljust(len(area.group(1))) + text[area.end(1):])  # same size
    os.utime(ann, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert (ann.stat().st_size, ann.stat().st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    changed = datachecks.check(cfg, splits=('train',))
    assert parsed == [str(ann)] * 2 and changed['train'][0]['zero_size_boxes'] == 1
    cfg.train_dataloader.dataset.filter_cfg = dict(filter_empty_gt=False)  # another verdict for the same file
    datachecks.check(cfg, splits=('train',))
    assert len(parsed) == 3


def test_damaged_coco_verdict_is_never_trusted(toy_coco, monkeypatch, runs):
    """An entry edited without its digest, or not an entry at all: a warning names it, the file is parsed again."""
    import datachecks
    from datachecks.checks import CACHE
    cfg, ann, parsed = toy_coco
    counting(monkeypatch, parsed)
    truth = datachecks.check(cfg, splits=('train',))
    cache_file = Path(cfg.work_dir) / CACHE
    stored = json.loads(cache_file.read_text())
    entry = stored['coco'][os.path.realpath(ann)]
    for damage in (lambda e: {**e, 'counts': dict(e['counts'], images=0)},
                   lambda e: {k: v for k, v in e.items() if k != 'file_names'}, lambda e: 'junk'):
        stored['coco'][os.path.realpath(ann)] = damage(entry)
        cache_file.write_text(json.dumps(stored))
        result, log = runs.logged_warnings(datachecks.check, cfg, True, ('train',))
        assert result == truth and f'the cached verdict of {ann} is damaged' in log
    assert len(parsed) == 4
    cache_file.write_text(cache_file.read_text()[:100])  # cut: not json
    result, log = runs.logged_warnings(datachecks.check, cfg, True, ('train',))
    assert result == truth and len(parsed) == 5 and 'is not a cache this tool wrote' in log



def test_typed_parse_gives_the_json_path_verdict(toy_coco, monkeypatch):
    """msgspec's typed records and json's dicts reach coco_skips with the same verdict, on a file where every kind of
    skip occurs (json's path is held to mmdet's own CocoDataset in test_fault_annotations.py)."""
    import datachecks
    from datachecks import coco, found
    cfg, ann, _ = toy_coco
    rng = np.random.default_rng(3)
    data = json.loads(ann.read_text())
    data['categories'].append(dict(id=77, name='hexagon'))
    data['images'] = [dict(id=10 + i, file_name=f'{i}.jpg', width=int(rng.choice([20, 96])), height=64)
                      for i in range(30)]
    data['annotations'] = []
    for j in range(300):
        x, y = (float(v) for v in rng.uniform(-20, 100, 2))
        w, h = (float(v) for v in rng.choice([0.5, 1, 7.25, 40.0], 2))
        data['annotations'].append(dict(id=5000 + j, image_id=10 + int(rng.integers(0, 27)), category_id=int(
            rng.choice([1, 2, 3, 77])), bbox=[x, y, w, h], area=float(rng.choice([0, w * h])),
            iscrowd=int(rng.random() < .3), segmentation=[[x, y, x + w, y, x + w, y + h]],
            **({'ignore': int(rng.random() < .5)} if rng.random() < .1 else {})))
    ann.write_text(json.dumps(data))
    monkeypatch.setattr(found, 'SHOW', 10 ** 6)
    _, ds = datachecks.lazy_dataset(cfg.train_dataloader.dataset, cfg.default_scope)
    assert coco.typed(ann.read_bytes(), ds.metainfo['classes'], True) is not None  # the fast path is taken
    counts, errors, skips, names = coco.parse_and_check(ds, True)
    monkeypatch.setattr(coco, 'msgspec', None)
    counts_json, errors_json, skips_json, names_json = coco.parse_and_check(ds, True)
    assert not errors.kinds and not errors_json.kinds
    assert {'ignored_boxes', 'zero_size_boxes', 'outside_boxes', 'other_class_boxes', 'empty_images', 'small_images',
            'images_without_boxes'} <= skips.kinds.keys()
    assert (counts, skips.kinds, names) == (counts_json, skips_json.kinds, names_json)
    assert list(skips.kinds) == list(skips_json.kinds)  # kinds in the same order: the log line is the same
