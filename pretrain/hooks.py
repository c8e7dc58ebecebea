"""Guards for long runs: stop at the first non-finite loss before a checkpoint can save damaged weights, and report
how many unreadable images the datasets skipped."""
import math
import os.path as osp

import torch
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module()
class NonFiniteLossHook(Hook):
    """Raise FloatingPointError on a NaN/inf loss. Runs before CheckpointHook (VERY_LOW) in the same iteration, so
    the last checkpoint on disk is the last good one."""

    priority = 'ABOVE_NORMAL'

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        loss = (outputs or {}).get('loss')
        if loss is None or math.isfinite(loss := float(torch.as_tensor(loss).detach())):
            return
        last = osp.join(runner.work_dir, 'last_checkpoint')
        kept = open(last).read().strip() if osp.isfile(last) else 'none saved yet'
        raise FloatingPointError(f'non-finite loss ({loss}) at iteration {runner.iter + 1} (epoch '
                                 f'{runner.epoch + 1}); stopping. The last good checkpoint is kept: {kept}. Resume '
                                 'from it with a lower lr, bf16 off, or after checking the data.')


@HOOKS.register_module()
class SkippedImagesHook(Hook):
    """Log `skipped_images` (unreadable images skipped by ImageFolderDataset so far) with every training log line
    and after each validation."""

    @staticmethod
    def _count(loader) -> int | None:
        skipped = getattr(getattr(loader, 'dataset', None), 'skipped', None)
        return None if skipped is None else int(skipped)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        count = self._count(runner.train_dataloader)
        if count is not None:
            runner.message_hub.update_scalar('train/skipped_images', count)

    def after_val_epoch(self, runner, metrics=None) -> None:
        count = self._count(runner.val_dataloader)
        if count:
            runner.logger.warning(f'validation skipped {count} unreadable images so far (named in the warnings)')
