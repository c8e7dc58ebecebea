"""Mixed precision on the CPU (runtime/amp.py): DeviceAmpOptimWrapper autocasts in the dtype asked for, loss-scales
float16 only and keeps mmengine's checkpoint layout; `tools/train.py --amp-dtype bfloat16` trains every stage (FCMAE
visible path, fine-tuning, Mask R-CNN, UPerNet; atto, toy data, CPU-sized heads) under bfloat16 autocast, with finite
losses close to the float32 run of the same seed, Mask R-CNN also under float16 autocast (runtime/det_amp.py feeds
mmcv's nms float32 and its RoIAlign a dtype it takes). ~2 min on one core (the runner builds dominate)."""
import copy
import math

import pytest
import torch
import torch.nn as nn
from mmengine.optim import build_optim_wrapper
from mmengine.optim.optimizer import amp_optimizer_wrapper

import runtime.launch
import toydata
from runtime.amp import DeviceAmpOptimWrapper
from toyruns import CONFIGS, Toy
from toyruns.stages import ROOT

pytestmark = pytest.mark.usefixtures('one_thread')  # conftest.py


def wrapper(dtype, model=None, **kwargs):
    model = model or nn.Linear(4, 3)
    return model, build_optim_wrapper(model, dict(type='DeviceAmpOptimWrapper', dtype=dtype,
                                                  optimizer=dict(type='SGD', lr=0.1), **kwargs))


@pytest.mark.parametrize('dtype, scaled', [(None, False), ('bfloat16', False), ('float16', True)])
def test_cpu_autocast_in_the_dtype_asked_for(dtype, scaled):
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model, optim = wrapper(dtype)
        x = 0.1 * torch.randn(2, 4)  # |w| <= 0.5 (Linear's init): |dloss/dW| <= 0.12, times 2**16 below 65504
    reference = copy.deepcopy(model)  # the float32 SGD step on the same loss
    reference(x).pow(2).mean().backward()
    expected = -0.1 * reference.weight.grad
    assert isinstance(optim, DeviceAmpOptimWrapper) and optim.device_type == 'cpu'
    with optim.optim_context(model):
        out = model(x)
    assert out.dtype == getattr(torch, dtype or 'float32')  # torch's autocast casts the Linear
    assert optim.loss_scaler.is_enabled() == scaled
    before = model.weight.detach().clone()
    optim.update_params(out.float().pow(2).mean())
    # one step, unscaled: float32's update within the cast dtype's rounding (of x, the output and the gradient),
    # plus float32's of the weight it is added to
    atol = 4 * torch.finfo(out.dtype).eps * expected.abs().max() + torch.finfo(torch.float32).eps * before.abs().max()
    torch.testing.assert_close(model.weight.detach() - before, expected, rtol=0, atol=atol.item())
    state = optim.state_dict()
    assert ('loss_scaler' in state) == scaled  # mmengine's key, only when a scale exists
    if scaled:
        assert state['loss_scaler']['scale'] == 65536.  # torch's GradScaler default, mmengine's 'dynamic'
    _, fresh = wrapper(dtype, model)
    fresh.load_state_dict(optim.state_dict())
    fresh.load_state_dict(dict(optim.optimizer.state_dict(), loss_scaler={}))  # a checkpoint of a non-scaling run


def test_bad_dtype_is_named():
    with pytest.raises(ValueError, match=r"optim_wrapper.dtype='float64' on cpu: expected one of"):
        wrapper('float64')


def test_accelerator_parameters_get_mmengines_wrapper(monkeypatch):
    """Parameters on CUDA: mmengine's AmpOptimWrapper.__init__ runs as it is (its GradScaler, its dtype); faked
    here by the device lookup and mmengine's CUDA check, since this machine has no GPU."""
    monkeypatch.setattr('runtime.amp.param_device', lambda optimizer: 'cuda')
    monkeypatch.setattr(amp_optimizer_wrapper, 'is_cuda_available', lambda: True)
    with pytest.warns(UserWarning, match='CUDA is not available'):  # torch's scaler, built for the GPU it lacks
        _, optim = wrapper('float16')
    assert isinstance(optim.loss_scaler, amp_optimizer_wrapper.GradScaler) and optim.cast_dtype == torch.float16


# ---- every stage, bf16 against fp32 -----------------------------------------------------------------------------
@pytest.fixture(scope='module')
def toy_data(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('amp')
    return dict(fcmae=toydata.unlabeled(tmp / 'pool', images=4, size=(64, 64))['root'],
                finetune=toydata.imagenet_folder(tmp / 'imagenet', classes=4, train_per_class=1, val_per_class=1,
                                                 size=64)['root'],
                det=toydata.coco_instances(tmp / 'coco', train_images=2, val_images=1, size=(128, 96))['root'],
                seg=toydata.ade20k(tmp / 'ade', train_images=4, val_images=1, size=(64, 64))['root'])


TOYS = dict(fcmae=dict(length=2, size=64, batch=4), finetune=dict(length=2, size=64, batch=4, images=4),
            det=dict(length=2, size=128, batch=2, images=2), seg=dict(length=2, size=64, batch=2))  # 2 steps each
EXTRA = dict(fcmae=['model.path=visible'], finetune=['model.backbone.drop_path_rate=0.'], det=[], seg=[])


def train(stage, data, work, monkeypatch, *amp, options=()):
    """tools/train.py on the stage's toy run (2 optimizer steps); returns (per-step losses, the output dtypes of the
    first block's pwconv1 seen during training, the runner)."""
    from tools import train as train_tool
    toy = Toy(stage, str(data), **TOYS[stage], extra=EXTRA[stage])
    seen, build = [], runtime.launch.build_runner

    def build_and_watch(cfg):
        runner = build(cfg)
        model = runner.model
        encoder = model.encoder if stage == 'fcmae' else model.backbone
        encoder.stages[0][0].pwconv1.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
        return runner
    monkeypatch.setattr(runtime.launch, 'build_runner', build_and_watch)
    opts = toy.train_options() + ['default_hooks.logger.interval=1', f'experiment_name={stage}{"".join(amp)}',
                                  *options]
    if stage in ('det', 'seg'):
        opts.append('model.backbone.init_cfg=None')
    runner = train_tool.main([str(ROOT / CONFIGS[stage]), '--work-dir', str(work), *amp, '--no-preflight',
                              '--cfg-options', *opts])
    losses = list(runner.message_hub.get_scalar('train/loss').data[0])
    return losses, set(seen), runner


# |amp - fp32| / fp32 of each step's loss. Step 1 (same weights, same batch) differs by autocast's rounding alone:
# below 4 eps of the cast dtype (bfloat16 3.1e-2, float16 3.9e-3); measured in bfloat16 FCMAE 6.4e-6, fine-tuning
# 3.0e-3 (its loss is a bfloat16 number), Mask R-CNN 1.6e-4, UPerNet 2.4e-5; in float16 Mask R-CNN 1.7e-3. Step 2
# starts from weights one update apart; Mask R-CNN's losses move most there (likely its RoI sampling, over proposals
# ranked by rounded scores): measured 3.7e-2 in bfloat16, 2.0e-2 in float16 (Intel Xeon; 2.9e-3 on AMD EPYC).
STEP2 = dict(det=0.1)


@pytest.fixture(scope='module')
def fp32_runs() -> dict:
    """Each stage's float32 losses and output dtypes, run once for the dtypes compared with it."""
    return {}


@pytest.mark.parametrize('stage, dtype', [('fcmae', 'bfloat16'), ('finetune', 'bfloat16'), ('det', 'bfloat16'),
                                          ('det', 'float16'), ('seg', 'bfloat16')])
def test_amp_training_step_on_cpu(stage, dtype, toy_data, fp32_runs, tmp_path, monkeypatch):
    if dtype == 'bfloat16':
        amp, dtypes16, runner = train(stage, toy_data[stage], tmp_path / dtype, monkeypatch, '--amp-dtype', dtype)
    else:  # float16: the config's wrapper, its dynamic scale started at 2**-4. --amp's 2**16 skips every step that
        # overflows and halves the scale, which two steps cannot compare: the stem's bias gradient (measured:
        # |dloss/d stem output| up to 2.9e4, float32 alike) sums past float16's 65504 at a scale of 1
        amp, dtypes16, runner = train(stage, toy_data[stage], tmp_path / dtype, monkeypatch, options=[
            f'optim_wrapper.dtype={dtype}', 'optim_wrapper.loss_scale.init_scale=0.0625'])
        assert runner.optim_wrapper.loss_scaler.get_scale() == 0.0625  # no step overflowed (none was halved)
    if stage not in fp32_runs:
        fp32_runs[stage] = train(stage, toy_data[stage], tmp_path / 'fp32', monkeypatch)[:2]
    fp32, dtypes32 = fp32_runs[stage]
    cast = getattr(torch, dtype)
    assert dtypes32 == {torch.float32} and dtypes16 == {cast}  # autocast active inside the step
    assert isinstance(runner.optim_wrapper, DeviceAmpOptimWrapper) and runner.optim_wrapper.cast_dtype == cast
    assert len(amp) == len(fp32) == 2 and all(map(math.isfinite, amp + fp32))
    rel = [abs(b - f) / abs(f) for b, f in zip(amp, fp32)]
    print(f'{stage}: fp32 {fp32}, {dtype} {amp}, relative differences {rel[0]:.2e} {rel[1]:.2e}')
    bound = 4 * torch.finfo(cast).eps
    assert 0 < rel[0] < bound  # not bit-equal (autocast ran), yet close
    assert rel[1] < STEP2.get(stage, bound)
