"""Fine-tuning's EMA as the official code (one update per optimizer step; raw and EMA weights both validated) and
guards for long runs: stop at the first non-finite loss before a checkpoint can save damaged weights, and report
how many unreadable images the datasets skipped."""
import math
import os.path as osp

import torch
from mmengine.hooks import EMAHook, Hook
from mmengine.registry import HOOKS, LOOPS
from mmengine.runner import ValLoop

from runtime.mmengine_private import accumulative_counts, default_ema_interval, evaluate_val_loop


@HOOKS.register_module()
class OptimStepEMAHook(EMAHook):
    """mmengine's EMAHook updating once per optimizer step, as timm's ModelEma in the official training loop: the
    interval is read from the built optim wrapper when the run starts, so `--cfg-options
    optim_wrapper.accumulative_counts=N` changes both. An explicit `interval=` is kept as given."""

    def before_run(self, runner) -> None:
        default_ema_interval(self, accumulative_counts(runner.optim_wrapper))
        super().before_run(runner)


@LOOPS.register_module()
class RawAndEMAValLoop(ValLoop):
    """mmengine's ValLoop on the raw weights (`raw/accuracy/top1`, ...) and then on the EMA ones, which EMAHook swaps
    in for the epoch (`accuracy/top1`, ...), as the official `--model_ema_eval`: CheckpointHook keeps the best of
    each (`save_best` list). Without an EMAHook one pass: the raw weights' metrics under both names."""

    def run(self) -> dict:
        ema = any(isinstance(h, EMAHook) for h in self.runner.hooks)
        self.runner.call_hook('before_val')
        self.runner.model.eval()
        raw = evaluate_val_loop(self) if ema else None  # before EMAHook.before_val_epoch: the raw weights in place
        self.runner.call_hook('before_val_epoch')  # EMAHook: the EMA weights in
        self.runner.model.eval()
        metrics = evaluate_val_loop(self)
        raw = dict(metrics) if raw is None else raw
        metrics.update({f'raw/{k}': v for k, v in raw.items()})
        self.runner.call_hook('after_val_epoch', metrics=metrics)  # EMAHook: the raw weights back
        self.runner.call_hook('after_val')
        return metrics


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
