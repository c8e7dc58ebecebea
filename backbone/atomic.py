"""Crash-safe checkpoints for mmengine 0.10.7 runs of every stage (issue 8; exact resume: resume.py).

`install()` (run at import, idempotent) patches three places: checkpoint files (`*.pth` through the local file backend)
and the `last_checkpoint` pointer are written to a temporary file in the same folder, fsynced and renamed, so a kill
never leaves a cut file under a final name; `--resume` (auto) takes the newest *complete* checkpoint and logs which.
"""
import builtins
import logging
import os
import os.path as osp
import zipfile

from mmengine.fileio.backends import local_backend
from mmengine.hooks import checkpoint_hook as _checkpoint_hook_module
from mmengine.logging import print_log
from mmengine.runner import checkpoint as _checkpoint_module
from mmengine.runner import runner as _runner_module

POINTER = 'last_checkpoint'


# --------------------------------------------------------------------------------------------- atomic writes
def _fsync_dir(folder: str):
    fd = os.open(folder or '.', os.O_RDONLY)
    try:
        os.fsync(fd)  # makes the rename itself durable
    finally:
        os.close(fd)


def _publish(tmp: str, path: str):
    """fsync `tmp`, then rename it over `path` (atomic on POSIX within one file system)."""
    with builtins.open(tmp, 'rb+') as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(osp.dirname(path))


def _tmp_name(path: str) -> str:
    return osp.join(osp.dirname(path), f'.{osp.basename(path)}.tmp{os.getpid()}')


def _atomic_put(original):
    def put(self, obj: bytes, filepath) -> None:
        path = os.fspath(filepath)
        if not path.endswith('.pth'):
            return original(self, obj, filepath)
        tmp = _tmp_name(path)
        original(self, obj, tmp)  # the backend's own write (makes the folder), to a name resume never reads
        _publish(tmp, path)
    put.atomic_original = original
    put.__doc__ = f'{original.__doc__ or ""}\n(backbone.atomic: .pth files go to a temporary name, fsync, rename.)'
    return put


class _AtomicTextFile:
    """`open(path, 'w')` stand-in whose text appears under `path` only once it is complete and synced."""

    def __init__(self, path: str, *args, **kwargs):
        self.path, self.tmp = path, _tmp_name(path)
        self.file = builtins.open(self.tmp, 'w', *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.file, name)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc):
        self.file.close()
        if exc_type is None:
            _publish(self.tmp, self.path)
        else:
            os.remove(self.tmp)


def _checkpoint_hook_open(file, mode='r', *args, **kwargs):
    """`open` as seen by mmengine.hooks.checkpoint_hook only: the `last_checkpoint` pointer is written atomically."""
    if mode == 'w' and osp.basename(os.fspath(file)) == POINTER:
        return _AtomicTextFile(os.fspath(file), *args, **kwargs)
    return builtins.open(file, mode, *args, **kwargs)


# ------------------------------------------------------------------------------- resume from a complete file
def is_complete(path: str) -> bool:
    """A torch.save zip whose central directory (written last) reads back; legacy non-zip files: non-empty."""
    if not osp.isfile(path) or osp.getsize(path) == 0:
        return False
    if not zipfile.is_zipfile(path):
        with builtins.open(path, 'rb') as f:
            return f.read(4) != b'PK\x03\x04'  # a zip start without a readable end: cut
    try:
        with zipfile.ZipFile(path) as z:
            return any(n.endswith('data.pkl') for n in z.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def find_last_complete_checkpoint(work_dir: str) -> str | None:
    """The checkpoint `last_checkpoint` names if complete (also looked up by name in `work_dir`, for a moved work
    dir), else the newest complete `*.pth` in `work_dir`; logs the choice and every file passed over."""
    pointer = osp.join(work_dir, POINTER)
    named = builtins.open(pointer).read().strip() if osp.isfile(pointer) else ''
    candidates = [named, osp.join(work_dir, osp.basename(named))] if named else []
    found = [osp.join(work_dir, f) for f in os.listdir(work_dir) if f.endswith('.pth')] if osp.isdir(work_dir) else []
    candidates += sorted(found, key=osp.getmtime, reverse=True)
    passed = []
    for path in dict.fromkeys(candidates):  # unique, in order
        if is_complete(path):
            why = f'; passed over {", ".join(passed)}' if passed else ''
            print_log(f'resume: last complete checkpoint is {path}{why}', logger='current',
                      level=logging.WARNING if passed else logging.INFO)
            return path
        passed.append(f'{path} ({"missing" if not osp.exists(path) else "incomplete"})')
    print_log(f'resume: no complete checkpoint in {work_dir}' + (f' (passed over {", ".join(passed)})' if passed
                                                                 else '') + '; starting from scratch',
              logger='current', level=logging.WARNING)
    return None


def install():
    """Apply the three patches once; calling again changes nothing."""
    put = local_backend.LocalBackend.put
    if not hasattr(put, 'atomic_original'):
        local_backend.LocalBackend.put = _atomic_put(put)
    _checkpoint_hook_module.open = _checkpoint_hook_open  # module global shadows the builtin for that module only
    _runner_module.find_latest_checkpoint = find_last_complete_checkpoint  # Runner.load_or_resume's auto resume
    _checkpoint_module.find_latest_checkpoint = find_last_complete_checkpoint


install()
