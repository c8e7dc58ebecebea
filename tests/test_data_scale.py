"""ImageNet-sized image lists at cluster scale: the samples live in numpy arrays, so a forked loader worker reading a
whole epoch gains no private memory (a list of tuples is copied into it page by page); with a process group, rank 0
alone walks the folder and every rank gets its samples, or its error."""
import json
import os
import pickle
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
