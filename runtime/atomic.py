"""Crash-safe checkpoints through mmengine's own extension points (read from mmengine 0.10.7): a file backend that
writes to a temporary name, fsyncs and renames, and a CheckpointHook that saves through it and publishes the
`last_checkpoint` pointer the same way; `--resume` then takes the newest *complete, resumable* checkpoint (exact
resume: resume.py)."""
import logging
import os
import os.path as osp
import zipfile

from backbone.checkpoint import CheckpointError, safe_load
from mmengine.fileio import LocalBackend
from mmengine.hooks import CheckpointHook
from mmengine.logging import print_log

from .mmengine_private import POINTER, StagedWorkDir

STAGING = '.last_checkpoint.staging'  # where CheckpointHook's own open(work_dir/last_checkpoint) lands first
BACKEND = 'atomic_local'  # the name runtime/__init__.py registers AtomicLocalBackend under (no URI prefix)


def _fsync_dir(folder: str):
    fd = os.open(folder or '.', os.O_RDONLY)
    try:
        os.fsync(fd)  # makes the rename itself durable
    finally:
        os.close(fd)


def publish(tmp: str, path: str):
    """fsync `tmp`, then rename it over `path` (atomic on POSIX within one file system)."""
    with open(tmp, 'rb+') as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(osp.dirname(path))


def _tmp_name(path: str) -> str:
    return osp.join(osp.dirname(path), f'.{osp.basename(path)}.tmp{os.getpid()}')


class AtomicLocalBackend(LocalBackend):
    """mmengine's LocalBackend whose `put` writes to a hidden temporary name in the same folder, fsyncs it and renames
    it over the final name: a kill never leaves a cut checkpoint under a name that resume reads."""

    def put(self, obj: bytes, filepath) -> None:
        path = os.fspath(filepath)
        tmp = _tmp_name(path)
        super().put(obj, tmp)  # LocalBackend's own write (it makes the folder), to a name resume never reads
        publish(tmp, path)


class AtomicCheckpointHook(CheckpointHook):
    """mmengine's CheckpointHook (same arguments) that writes local checkpoints through AtomicLocalBackend and
    publishes `last_checkpoint` by rename, so neither is ever seen half-written."""

    def before_train(self, runner) -> None:
        local = '://' not in str(self.out_dir or runner.work_dir)
        if local and self.backend_args is None and self.file_client_args is None:
            self.backend_args = dict(backend=BACKEND)
        super().before_train(runner)
        os.makedirs(osp.join(runner.work_dir, STAGING), exist_ok=True)

    def after_train_epoch(self, runner) -> None:
        self._publishing_pointer(runner, super().after_train_epoch)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        self._publishing_pointer(runner, super().after_train_iter, batch_idx, data_batch, outputs)

    def _publishing_pointer(self, runner, save, *args):
        """Run CheckpointHook's step with the staged work dir, then rename a pointer it wrote into place: on global
        rank 0 only, which alone writes it; another rank seeing it on a shared file system would race the rename."""
        staged, last = osp.join(runner.work_dir, STAGING, POINTER), self.last_ckpt
        save(StagedWorkDir(runner, osp.join(runner.work_dir, STAGING)), *args)
        if runner.rank != 0:
            return
        if osp.exists(staged):
            publish(staged, osp.join(runner.work_dir, POINTER))
        elif self.last_ckpt != last:
            print_log(f'AtomicCheckpointHook: saved {self.last_ckpt} but found no {POINTER} in {STAGING}: this '
                      'mmengine writes the pointer elsewhere than 0.10.7 did, so it is not published atomically',
                      logger='current', level=logging.WARNING)


def is_complete(path: str) -> bool:
    """A torch.save zip whose central directory (written last) reads back; legacy non-zip files: non-empty."""
    if not osp.isfile(path) or osp.getsize(path) == 0:
        return False
    if not zipfile.is_zipfile(path):
        with open(path, 'rb') as f:
            return f.read(4) != b'PK\x03\x04'  # a zip start without a readable end: cut
    try:
        with zipfile.ZipFile(path) as z:
            return any(n.endswith('data.pkl') for n in z.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


RESUMABLE = ('optimizer', 'message_hub')  # what mmengine's resume reads besides the weights


def not_resumable(path: str, needs: tuple = RESUMABLE) -> str:
    """Why `path` cannot be resumed from ('' if it can): cut, unreadable, or without a key of `needs`, e.g.
    CheckpointHook's best_*.pth (saved without optimizer and scheduler state: AdamW and the schedule would restart)."""
    if not osp.exists(path):
        return 'missing'
    if not is_complete(path):
        return 'incomplete'
    try:
        ckpt = safe_load(path, mmap=zipfile.is_zipfile(path))  # a zip: the pickle only, tensors stay in the file
    except CheckpointError as e:
        return f'unreadable: {str(e).removeprefix(path + ": ")}'
    lacks = [k for k in needs if k not in ckpt]
    return f'no {" or ".join(lacks)} saved: not resumable (best_* checkpoints are saved without optimizer ' \
           'state)' if lacks else ''


def choose_checkpoint(work_dir: str) -> tuple[str | None, str, int]:
    """(path, message, log level): the checkpoint `last_checkpoint` names if resumable (also looked up by name in
    `work_dir`, for a moved work dir), else the newest resumable `*.pth` in `work_dir`, else None. Resumable: complete
    and holding optimizer and message hub; each file passed over is named with the reason."""
    pointer = osp.join(work_dir, POINTER)
    named = open(pointer).read().strip() if osp.isfile(pointer) else ''
    candidates = [named, osp.join(work_dir, osp.basename(named))] if named else []
    found = [osp.join(work_dir, f) for f in os.listdir(work_dir) if f.endswith('.pth')] if osp.isdir(work_dir) else []
    candidates += sorted(found, key=osp.getmtime, reverse=True)
    passed = []
    for path in dict.fromkeys(candidates):  # unique, in order
        why = not_resumable(path)
        if not why:
            why = f'; passed over {", ".join(passed)}' if passed else ''
            return path, f'resume: last complete checkpoint is {path}{why}', logging.WARNING if passed else logging.INFO
        passed.append(f'{path} ({why})')
    why = f' (passed over {", ".join(passed)})' if passed else ''
    return None, f'resume: no resumable checkpoint in {work_dir}{why}; starting from scratch', logging.WARNING


def find_last_complete_checkpoint(work_dir: str) -> str | None:
    """choose_checkpoint's path; logs the choice and every file passed over."""
    path, message, level = choose_checkpoint(work_dir)
    print_log(message, logger='current', level=level)
    return path
