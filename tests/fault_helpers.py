"""Shared by the exact-resume tests (issue 8): fault modules written into a test's tmp folder (SIGKILL at an
iteration, SIGKILL halfway through a checkpoint write), tools/train.py in a subprocess or in this process, and the
largest difference between two checkpoints' state dicts."""
import os
import subprocess
import sys
from pathlib import Path

import torch

from tools import train as train_tool

ROOT = Path(__file__).resolve().parents[1]
WRITE_FAULT = '''"""FAULT_KILL_IN_WRITE=N: write half of the N-th checkpoint, then SIGKILL (import before backbone)."""
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
HELPER = '''"""Test-only faults for training subprocesses, driven by FAULT_* environment variables."""
import os, signal, time
import write_fault  # noqa: F401  (first: backbone.atomic must wrap the slow writer)
from mmengine.hooks import Hook
from mmengine.registry import HOOKS
import backbone  # noqa: F401  (registers ResumeStateHook)


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

def start(tmp: Path, config: Path, work: Path, options: list, *extra, **fault) -> subprocess.Popen:
    """tools/train.py in a subprocess, one thread, FAULT_* variables from `fault` (e.g. KILL_AT_ITER=5)."""
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=f'{tmp}{os.pathsep}{ROOT}',
               **{f'FAULT_{k}': str(v) for k, v in fault.items()})
    cmd = [sys.executable, 'tools/train.py', str(config), '--work-dir', str(work), *extra, '--cfg-options', *options]
    if 'KILL_IN_WRITE' in fault:  # the slow writer must sit under backbone.atomic's wrapper: import it first
        cmd[1:2] = ['-c', 'import sys, runpy, fault_helper; sys.argv = sys.argv[1:]; '
                          'runpy.run_path(sys.argv[0], run_name="__main__")', 'tools/train.py']
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(proc: subprocess.Popen) -> tuple[str, int]:
    return proc.communicate(timeout=300)[0], proc.returncode


def train_here(config: Path, work: Path, options: list, name: str, *extra):
    """tools/train.py in this process (saves the imports of a subprocess), on one thread like the subprocesses."""
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
