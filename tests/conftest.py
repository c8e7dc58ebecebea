"""Fixtures shared by several test files; pytest.ini puts the repository root on sys.path. Tests share helpers
through these fixtures only, never by importing another test module."""
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torch.nn as nn
from mmengine.model import BaseModel

from toyruns.stages import COCO_CLASSES, head_options

ROOT = Path(__file__).resolve().parents[1]
WRITE_FAULT = '''"""FAULT_KILL_IN_WRITE=N: write half of the N-th checkpoint, then SIGKILL (in mmengine's
LocalBackend.put, which runtime's AtomicLocalBackend calls to write its temporary file)."""
import os, signal
from mmengine.fileio.backends import local_backend

_put, _writes = local_backend.LocalBackend.put, [0]


def put(self, obj, filepath):
    if '.pth' in os.path.basename(str(filepath)):
        _writes[0] += 1
        if _writes[0] == int(os.environ.get('FAULT_KILL_IN_WRITE', 0)):
            with open(filepath, 'wb') as f:
                f.write(obj[:len(obj) // 2])
                f.flush()
                os.fsync(f.fileno())
            os.kill(os.getpid(), signal.SIGKILL)
    return _put(self, obj, filepath)


local_backend.LocalBackend.put = put
'''
HELPER = '''"""Test-only faults for training subprocesses, driven by FAULT_* environment variables (custom_imports)."""
import os, signal, time
import write_fault  # noqa: F401  (FAULT_KILL_IN_WRITE)
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module()
class KillAt(Hook):
    """SIGKILL rank FAULT_KILL_RANK (default 0) at the end of iteration FAULT_KILL_AT_ITER (after its checkpoint)."""
    priority = 'LOWEST'

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if runner.iter + 1 == int(os.environ.get('FAULT_KILL_AT_ITER', 0)) and \\
                runner.rank == int(os.environ.get('FAULT_KILL_RANK', 0)):
            print(f'FAULT: SIGKILL rank {runner.rank} at iteration {runner.iter + 1} at {time.time():.3f}', flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
'''


@pytest.fixture
def one_thread():
    """One intra-op thread: on a shared 2-core machine two OpenMP threads ran small steps ~10x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def fault_dir(tmp_path, monkeypatch) -> Path:
    """tmp_path holding the fault modules (`fault_helper` for custom_imports, `write_fault`), on sys.path for the
    runs in this process; subprocesses started by `runs.start` get it on PYTHONPATH."""
    (tmp_path / 'fault_helper.py').write_text(HELPER)
    (tmp_path / 'write_fault.py').write_text(WRITE_FAULT)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def start(tmp: Path, config: Path, work: Path, options: list, *extra, **fault) -> subprocess.Popen:
    """tools/train.py in a subprocess, one thread, FAULT_* variables from `fault` (e.g. KILL_AT_ITER=5)."""
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=f'{tmp}{os.pathsep}{ROOT}',
               **{f'FAULT_{k}': str(v) for k, v in fault.items()})
    cmd = [sys.executable, 'tools/train.py', str(config), '--work-dir', str(work), *extra, '--cfg-options', *options]
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def dist_train(tmp: Path, config: Path, work: Path, *extra, **fault) -> tuple[str, int, float]:
    """tools/dist_train.sh CONFIG 2 (torchrun, gloo) on a free port, `tmp` on PYTHONPATH, FAULT_* from `fault`;
    returns (output, exit code, wall seconds)."""
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    env = dict(os.environ, PYTHON=sys.executable, PORT=str(port), OMP_NUM_THREADS='1',
               PYTHONPATH=f'{tmp}{os.pathsep}{ROOT}', **{f'FAULT_{k}': str(v) for k, v in fault.items()})
    cmd = ['bash', str(ROOT / 'tools' / 'dist_train.sh'), str(config), '2', '--work-dir', str(work), *extra]
    start_time = time.time()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    return proc.stdout + proc.stderr, proc.returncode, time.time() - start_time


def finish(proc: subprocess.Popen) -> tuple[str, int]:
    return proc.communicate(timeout=300)[0], proc.returncode


def train_here(config: Path, work: Path, options: list, name: str, *extra):
    """tools/train.py in this process (saves the imports of a subprocess), on one thread like the subprocesses."""
    from tools import train as train_tool
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return train_tool.main([str(config), '--work-dir', str(work), *extra, '--cfg-options', *options,
                                f'experiment_name={name}'])  # a fresh logger per run, even within one second
    finally:
        torch.set_num_threads(threads)


def last_log(work: Path) -> str:
    """The newest run's log file in a work dir (read instead of capturing stdout, which mmengine's logger keeps)."""
    return max(work.glob('*/*.log'), key=lambda p: p.stat().st_mtime).read_text()


def max_difference(a: dict, b: dict) -> float:
    """Largest |a - b| over all tensors of two nested state dicts / lists; anything else must be equal."""
    if isinstance(a, (list, tuple)):
        a, b = dict(enumerate(a)), dict(enumerate(b))
    assert a.keys() == b.keys()
    diffs = [0.]
    for k in a:
        if isinstance(a[k], (dict, list, tuple)):
            diffs.append(max_difference(a[k], b[k]))
        elif isinstance(a[k], torch.Tensor):
            diffs.append((a[k].double() - b[k].double()).abs().max().item() if a[k].numel() else 0.)
        else:
            assert a[k] == b[k], k
    return max(diffs)


def logged_warnings(fn, *args):
    """(fn's result, the warnings it logged through mmengine's current logger)."""
    import logging
    from mmengine.logging import MMLogger
    records, handler = [], logging.Handler(logging.WARNING)
    handler.emit = lambda record: records.append(record.getMessage())
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    try:
        return fn(*args), '\n'.join(records)
    finally:
        logger.removeHandler(handler)


def det_toy_options(data_root, batch: int = 2, val: bool = True) -> list:
    """--cfg-options for toy COCO at data_root (COCO_CLASSES): LSJ and test scale 128, CPU-sized heads (64 FPN
    channels, 32 sampled RoIs, 50 proposals), no loader workers, one epoch, log every iteration; val=False: no
    validation while training."""
    opts = head_options('det') + [f'model.roi_head.{h}.num_classes={len(COCO_CLASSES)}'
                                  for h in ('bbox_head', 'mask_head')]
    opts += [f'data_root={data_root}', 'train_cfg.max_epochs=1', 'default_hooks.logger.interval=1',
             f'train_dataloader.batch_size={batch}', 'train_dataloader.dataset.pipeline.2.scale=(128,128)',
             'train_dataloader.dataset.pipeline.3.crop_size=(128,128)']
    if not val:
        opts += ['val_cfg=None', 'val_dataloader=None', 'val_evaluator=None']
    for split in ('train', 'val', 'test') if val else ('train', 'test'):
        opts += [f'{split}_dataloader.num_workers=0', f'{split}_dataloader.persistent_workers=False',
                 f'{split}_dataloader.dataset.metainfo.classes={",".join(COCO_CLASSES)}']
        if split != 'train':
            opts.append(f'{split}_dataloader.dataset.pipeline.1.scale=(128,128)')
    return opts


class ToyModel(BaseModel):
    """The smallest mmengine model that trains: a Linear(2, 1) with a squared-output loss."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2, 1)

    def forward(self, inputs, mode='tensor'):
        return dict(loss=self.fc(inputs).pow(2).mean()) if mode == 'loss' else self.fc(inputs)


@pytest.fixture
def toy_model():
    """The ToyModel class, for runners built inside a test."""
    return ToyModel


@pytest.fixture(scope='session')
def runs():
    """Helpers for tests that train through tools/train.py: start/finish a subprocess, dist_train (2 processes),
    train_here, last_log, max_difference, logged_warnings, det_toy_options (+ COCO_CLASSES) and the repository ROOT."""
    return SimpleNamespace(start=start, finish=finish, dist_train=dist_train, train_here=train_here, ROOT=ROOT,
                           last_log=last_log, max_difference=max_difference, det_toy_options=det_toy_options,
                           logged_warnings=logged_warnings,
                           COCO_CLASSES=COCO_CLASSES)
