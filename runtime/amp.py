"""Mixed precision on the device the model is on: `DeviceAmpOptimWrapper` is mmengine's AmpOptimWrapper on an
accelerator and torch.autocast on the CPU, where mmengine 0.10.7's wrapper cannot be built (it asserts a GPU).

The device is read from the parameters the optimizer holds when the Runner builds the wrapper (after the model has
moved there), never when the config is parsed. `dtype`:
  - 'bfloat16': autocast in bfloat16 on every device; no loss scaling on the CPU (bfloat16 has float32's range).
  - 'float16': autocast in float16 with the dynamic loss scale of `loss_scale`, on the CPU too (slow: CPUs emulate
    most float16 arithmetic; honoured because it was asked for by name).
  - None (the configs' and --amp's default): float16 on an accelerator, as mmengine; float32 on the CPU, with a
    warning in the log (float16 there is emulated, so slower than float32, and --amp-dtype bfloat16 exists).
"""
import logging
from contextlib import contextmanager

import torch
from mmengine.logging import print_log
from mmengine.optim import AmpOptimWrapper, OptimWrapper

from .mmengine_private import set_amp_state

ACCELERATORS = ('cuda', 'npu', 'mlu', 'musa')  # where mmengine's AmpOptimWrapper runs as it is
CPU_DTYPES = (None, 'float16', 'bfloat16')


def param_device(optimizer: torch.optim.Optimizer) -> str:
    """Device type of the first parameter the optimizer holds ('cpu' when it holds none)."""
    return next((p.device.type for group in optimizer.param_groups for p in group['params']), 'cpu')


def grad_scaler(device: str, loss_scale, enabled: bool) -> tuple[torch.amp.GradScaler, float | None]:
    """torch's GradScaler for `device` from mmengine's `loss_scale` forms ('dynamic', a float: static, a dict of
    GradScaler arguments), and the scale that `update` keeps for a static one."""
    if loss_scale == 'dynamic':
        return torch.amp.GradScaler(device, enabled=enabled), None
    if isinstance(loss_scale, float):
        return torch.amp.GradScaler(device, init_scale=loss_scale, enabled=enabled), loss_scale
    if isinstance(loss_scale, dict):
        return torch.amp.GradScaler(device, enabled=enabled, **loss_scale), None
    raise TypeError(f'optim_wrapper.loss_scale: expected "dynamic", a float or a dict, got {loss_scale!r}')


class DeviceAmpOptimWrapper(AmpOptimWrapper):
    """mmengine's AmpOptimWrapper (same arguments, same checkpoint state) where the parameters are on an
    accelerator; elsewhere autocast on their device type in `dtype`, loss-scaled only for float16 (module doc)."""

    def __init__(self, loss_scale='dynamic', dtype: str | torch.dtype | None = None, use_fsdp: bool = False,
                 **kwargs):
        self.device_type = param_device(kwargs['optimizer'])
        if self.device_type in ACCELERATORS:
            super().__init__(loss_scale=loss_scale, dtype=dtype, use_fsdp=use_fsdp, **kwargs)
            return
        name = dtype if isinstance(dtype, str) or dtype is None else str(dtype).removeprefix('torch.')
        if name not in CPU_DTYPES:
            raise ValueError(f'optim_wrapper.dtype={dtype!r} on {self.device_type}: expected one of {CPU_DTYPES}')
        if use_fsdp:
            raise ValueError(f'optim_wrapper.use_fsdp=True on {self.device_type}: FSDP loss scaling needs a GPU')
        OptimWrapper.__init__(self, **kwargs)  # AmpOptimWrapper.__init__ asserts an accelerator
        cast_dtype = getattr(torch, name) if name else None
        scaler, static_scale = grad_scaler(self.device_type, loss_scale, enabled=cast_dtype == torch.float16)
        set_amp_state(self, scaler, cast_dtype, static_scale)  # what AmpOptimWrapper.__init__ would have set
        if self.cast_dtype is None:
            print_log(f'DeviceAmpOptimWrapper: parameters on {self.device_type}, no AMP dtype given: float32 '
                      '(float16 is emulated there); --amp-dtype bfloat16 (optim_wrapper.dtype) for mixed precision',
                      logger='current', level=logging.WARNING)
        else:
            print_log(f'DeviceAmpOptimWrapper: autocast {self.device_type} {name}'
                      f'{", dynamic loss scale" if self.loss_scaler.is_enabled() else ""}', logger='current')

    @contextmanager
    def optim_context(self, model: torch.nn.Module):
        """mmengine's context (no DDP sync while accumulating) inside autocast on the parameters' device."""
        if self.device_type in ACCELERATORS:
            with super().optim_context(model):
                yield
            return
        with OptimWrapper.optim_context(self, model), torch.autocast(
                self.device_type, dtype=self.cast_dtype or torch.bfloat16, enabled=self.cast_dtype is not None):
            yield

    @torch._dynamo.disable
    def update_params(self, *args, **kwargs):
        """mmengine's backward + step, always eager: under --compile (mmengine wraps train_step in torch.compile)
        dynamo of torch 2.14 fails tracing torch.optim's step over mmengine's parameter groups
        ('UserDefinedDictVariable' object has no attribute 'items'), and a Python-float lr that the schedule changes
        would recompile it every iteration; the model's forward is still compiled."""
        return super().update_params(*args, **kwargs)

    def state_dict(self) -> dict:
        """The optimizer's state, and the loss scaler's when it scales (mmengine stores it as `loss_scaler`)."""
        state = super().state_dict()
        if not self.loss_scaler.is_enabled():
            state.pop('loss_scaler')
        return state

    def load_state_dict(self, state_dict: dict):
        """A scaler's state only into a scaler that scales; a checkpoint without one (float32/bfloat16) starts the
        scale afresh, as torch's GradScaler refuses the empty state of a disabled one."""
        if not self.loss_scaler.is_enabled() or not state_dict.get('loss_scaler', True):
            state_dict.pop('loss_scaler', None)
        super().load_state_dict(state_dict)


class EagerStepOptimWrapper(OptimWrapper):
    """mmengine's OptimWrapper, with backward + optimizer step kept out of torch.compile as in
    DeviceAmpOptimWrapper.update_params: what a --compile run of a plain-OptimWrapper config (FCMAE) trains with."""

    @torch._dynamo.disable
    def update_params(self, *args, **kwargs):
        return super().update_params(*args, **kwargs)


EAGER_STEP = {'OptimWrapper': 'EagerStepOptimWrapper', 'AmpOptimWrapper': 'DeviceAmpOptimWrapper'}


def eager_optimizer_step(cfg):
    """For cfg.compile (mmengine compiles model.train_step, optimizer step included): the config's optimizer wrapper
    swapped for the same one with an eager step (EAGER_STEP; DeviceAmpOptimWrapper is mmengine's AmpOptimWrapper on
    an accelerator). Numbers are those of the eager run; other wrapper types are kept, with a warning."""
    kind = cfg.optim_wrapper.get('type', 'OptimWrapper')
    kind = getattr(kind, '__name__', kind)
    if kind in EAGER_STEP:
        cfg.optim_wrapper.type = EAGER_STEP[kind]
    elif kind not in EAGER_STEP.values():
        print_log(f'compile: optim_wrapper.type={kind} kept; torch.compile traces its optimizer step, which may fail '
                  f'or recompile every iteration (eager-step wrappers: {sorted(EAGER_STEP.values())})',
                  logger='current', level=logging.WARNING)
