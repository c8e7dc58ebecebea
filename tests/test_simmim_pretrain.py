"""SimMIM pre-training of Swin inside the suite (pretrain/configs/simmim_swin_b.py at toy size: mmpretrain's own SimMIM
on the FCMAE image pools): mmpretrain's pipeline, the official schedule, learning through tools/train.py, a bitwise
resume, and a checkpoint that loads strictly into the Swin detector and segmentor configs (backbone/swin_simmim.py)."""
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.registry import DATASETS, HOOKS, PARAM_SCHEDULERS, init_default_scope
from PIL import Image

from backbone.checkpoint import CheckpointError
from runtime import mmengine_checkpoints
from toydata import unlabeled

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
SIZE, WINDOW = 96, 3  # 3 × 3 mask cells of 32 px; Swin maps 24, 12, 6, 3: window 3 tiles all four
TINY = dict(embed_dims=32, depths=[2, 2, 2, 2], num_heads=[1, 2, 4, 8])  # Swin-B's layout at CPU size
LEAF = '''_base_ = '{root}/pretrain/configs/simmim_swin_b.py'
model = dict(backbone=dict(arch=dict(_delete_=True, **{tiny}), img_size={size},
                           stage_cfgs=dict(block_cfgs=dict(window_size={window}))),
             neck=dict(in_channels={width}))
custom_hooks = _base_.custom_hooks + {extra}
'''
pytestmark = pytest.mark.usefixtures('one_thread')  # conftest.py


class Crash(Exception):
    pass


@HOOKS.register_module(force=True)
class CrashAfterEpoch(Hook):
    """Raise after epoch `epoch`'s checkpoint is written (CheckpointHook is VERY_LOW): a run that dies there."""
    priority = 'LOWEST'

    def __init__(self, epoch: int):
        self.epoch = epoch

    def after_train_epoch(self, runner) -> None:
        if runner.epoch + 1 == self.epoch:
            raise Crash(f'after epoch {self.epoch}')


def toy_config(tmp, name='toy', extra='[]'):
    path = tmp / f'{name}.py'
    path.write_text(LEAF.format(root=ROOT, tiny=TINY, size=SIZE, window=WINDOW, width=TINY['embed_dims'] * 8,
                                extra=extra))
    return path


def options(data, batch, epochs, lr, accum=1, warmup=1) -> list:
    """The pool at `data`; toy sizes and lengths only: 96 px crops and masks, batch, epochs, warm-up, lr; no loader
    workers."""
    return [f'data_root={data}', 'train_dataloader.dataset.dataset.split=None',  # every image under data_root
            f'train_dataloader.batch_size={batch}', 'train_dataloader.num_workers=0',
            'train_dataloader.persistent_workers=False', f'train_cfg.max_epochs={epochs}',
            f'train_dataloader.dataset.pipeline.0.scale={SIZE}',
            f'train_dataloader.dataset.pipeline.2.input_size={SIZE}',
            f'optim_wrapper.optimizer.lr={lr}', f'optim_wrapper.accumulative_counts={accum}',
            f'param_scheduler.0.end={warmup}', f'param_scheduler.1.begin={warmup}', 'default_hooks.logger.interval=1']


@pytest.fixture(scope='module')
def trained(tmp_path_factory, runs):
    """32 toy images (8 more held out), batch 4, 4 epochs: 32 iterations through tools/train.py; (folder, runner)."""
    tmp = tmp_path_factory.mktemp('simmim')
    unlabeled(tmp / 'pool', images=40, size=(SIZE, SIZE), seed=1)
    (tmp / 'held').mkdir()
    for p in sorted((tmp / 'pool').rglob('*.jpg'))[32:]:
        p.rename(tmp / 'held' / p.name)
    opts = options(tmp / 'pool', batch=4, epochs=4, lr=1e-3)
    return tmp, runs.train_here(toy_config(tmp), tmp / 'work', opts, 'simmim_learn')


def held_out_losses(runner, folder) -> tuple[float, float]:
    """(model, best constant) L1 loss on the masked pixels of held-out images, one fixed draw of crops and masks;
    the constant is the per-channel median of those very targets, the best any constant predictor can do."""
    cfg = runner.cfg.train_dataloader.dataset
    dataset = DATASETS.build(dict(cfg, dataset=dict(cfg.dataset, data_root=str(folder), split=None)))
    np.random.seed(0)
    items = [dataset[i] for i in range(len(dataset))]
    model = runner.model.eval()
    with torch.no_grad():
        data = model.data_preprocessor(dict(inputs=torch.stack([d['inputs'] for d in items]),
                                            data_samples=[d['data_samples'] for d in items]))
        loss = float(model.loss(data['inputs'], data['data_samples'])['loss'])
        target = data['inputs']
        mask = torch.stack([d.mask for d in data['data_samples']]).repeat_interleave(4, 1).repeat_interleave(4, 2)
        picked = target.permute(1, 0, 2, 3)[:, mask.bool()]  # (3, masked pixels)
        constant = (picked - picked.median(dim=1, keepdim=True).values).abs().mean()
    return loss, float(constant)


def test_trains_finite_decreasing_and_beats_the_best_constant(trained, runs):
    tmp, runner = trained
    assert 'the recipe is for batch 2048' in runs.last_log(tmp / 'work')  # lr set at the start from the run's batch
    losses, counts = runner.message_hub.get_scalar('train/loss').data
    assert len(losses) == 32 and np.isfinite(losses).all()
    first, last = losses[:8].mean(), losses[-8:].mean()
    assert last < 0.8 * first, (first, last)
    model, constant = held_out_losses(runner, tmp / 'held')
    assert model < 0.85 * constant, (model, constant)


def test_resume_after_a_crash_is_bitwise_the_uninterrupted_run(tmp_path, runs):
    """6 images, batch 2, 2 accumulation steps: epoch 1 ends mid-accumulation. A run that dies after epoch_1.pth,
    resumed with --resume, ends with the uninterrupted run's weights, optimizer and schedulers."""
    unlabeled(tmp_path / 'pool', images=6, size=(SIZE, SIZE), seed=2)
    opts = options(tmp_path / 'pool', batch=2, epochs=3, lr=1e-3, accum=2)
    config = toy_config(tmp_path)
    crash = toy_config(tmp_path, 'crash', "[dict(type='CrashAfterEpoch', epoch=1)]")
    runs.train_here(config, tmp_path / 'full', opts, 'simmim_full')
    with pytest.raises(Crash):
        runs.train_here(crash, tmp_path / 'cut', opts, 'simmim_cut')
    assert sorted(p.name for p in (tmp_path / 'cut').glob('*.pth')) == ['epoch_1.pth']
    runs.train_here(config, tmp_path / 'cut', opts, 'simmim_resumed', '--resume')
    log = runs.last_log(tmp_path / 'cut')
    assert 'resumed epoch: 1, iter: 3' in log and 'restored RNG states and accumulated gradients' in log
    with mmengine_checkpoints():
        a, b = (torch.load(tmp_path / run / 'epoch_3.pth', map_location='cpu') for run in ('full', 'cut'))
    assert a['meta']['iter'] == b['meta']['iter'] == 9
    for key in ('state_dict', 'optimizer', 'param_schedulers'):
        assert runs.max_difference(a[key], b[key]) == 0, key


def test_schedule_is_the_official_one():
    """lr per iteration of the Swin-B config against SimMIM's own schedule (lr_scheduler.py: ×0.1 from iteration
    700·n, counted from 0) and mmpretrain's config for every other optimizer value."""
    import mmpretrain
    cfg = Config.fromfile(osp.join(ROOT, 'pretrain', 'configs', 'simmim_swin_b.py'))
    ref = Config.fromfile(osp.join(osp.dirname(mmpretrain.__file__), '.mim', 'configs', 'simmim',
                                   'simmim_swin-base-w6_16xb128-amp-coslr-800e_in1k-192px.py'))
    ours, theirs = cfg.optim_wrapper, ref.optim_wrapper
    assert ours.optimizer.lr == theirs.optimizer.lr == 4e-4 and ours.clip_grad == theirs.clip_grad
    for key in ('betas', 'weight_decay'):
        assert ours.optimizer[key] == theirs.optimizer[key], key
    assert cfg.train_cfg.max_epochs == ref.train_cfg.max_epochs == 800
    n, lr = 2, ours.optimizer.lr  # iterations per epoch
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)
    schedulers = [PARAM_SCHEDULERS.get(s['type']).build_iter_from_epoch(optimizer=optimizer, epoch_length=n, **{
        k: v for k, v in s.items() if k not in ('type', 'convert_to_iter_based')}) for s in cfg.param_scheduler]
    got = []
    for _ in range(800 * n):
        got.append(optimizer.param_groups[0]['lr'])
        optimizer.step()  # no gradient: nothing moves; the order mmengine expects
        for s in schedulers:
            s.step()
    warmup, start = 10 * n, 5e-7 * lr / 1e-4
    official = [start + t * (lr - start) / warmup if t < warmup else lr * 0.1 ** (t >= 700 * n)
                for t in range(800 * n)]
    assert got[0] == pytest.approx(official[0], rel=1e-12)
    step = (lr - start) / warmup  # mmengine's LinearLR reaches lr one iteration early: within one step of it
    assert all(abs(g - o) <= step * (1 + 1e-9) for g, o in zip(got[:warmup], official))
    assert got[warmup:] == pytest.approx(official[warmup:], rel=1e-9)  # decay at epoch 700, not 710


def test_pipeline_is_mmpretrains_own_on_the_suites_images(tmp_path):
    """At the real 192 px: MMPretrainPipeline over UnlabeledImageDataset (PNG files at any depth, one unreadable)
    equals mmpretrain's own SimMIM pipeline and data preprocessor (its config file: cv2 loading, BGR, to_rgb) on the
    same file and numpy seed; the mask is the recipe's 22 of 36 cells; the bad file is skipped and counted."""
    import mmpretrain
    from mmengine.dataset import Compose
    from mmengine.registry import MODELS
    rng = np.random.default_rng(0)
    (tmp_path / 'pool' / 'sub').mkdir(parents=True)
    for i in range(2):
        Image.fromarray(rng.integers(0, 256, (200 + 20 * i, 230, 3), dtype=np.uint8)).save(tmp_path / 'pool' / 'sub' /
                                                                                           f'{i}.png')
    (tmp_path / 'pool' / 'unreadable.png').write_bytes(b'not an image')
    cfg = Config.fromfile(osp.join(ROOT, 'pretrain', 'configs', 'simmim_swin_b.py'))
    ds_cfg = cfg.train_dataloader.dataset
    dataset = DATASETS.build(dict(ds_cfg, dataset=dict(ds_cfg.dataset, data_root=str(tmp_path / 'pool'), split=None)))
    ref = Config.fromfile(osp.join(osp.dirname(mmpretrain.__file__), '.mim', 'configs', '_base_', 'datasets',
                                   'imagenet_bs256_simmim_192.py'))
    theirs = Compose([dict(t, type=f'mmpretrain.{t["type"]}') for t in ref.train_pipeline])
    ours_pre, theirs_pre = (MODELS.build(dict(c, _scope_='mmpretrain'))
                            for c in (cfg.model.data_preprocessor, ref.data_preprocessor))
    assert len(dataset) == 3
    for idx, name in [(0, 'sub/0.png'), (1, 'sub/1.png'), (2, 'sub/0.png')]:  # 2: unreadable, the next one stands in
        np.random.seed(idx)
        ours = dataset[idx]
        np.random.seed(idx)
        ref_item = theirs(dict(img_path=str(tmp_path / 'pool' / name)))
        assert ours['inputs'].shape == (3, 192, 192) and ours['inputs'].dtype == torch.uint8
        assert torch.equal(ours['inputs'], ref_item['inputs'].flip(0))  # RGB vs cv2's BGR
        mask = ours['data_samples'].mask
        assert mask.shape == (48, 48) and int(mask.sum()) == 22 * 8 * 8  # ceil(0.6 · 36) cells of 8 × 8 tokens
        assert torch.equal(mask, ref_item['data_samples'].mask)
        a, b = (pre(dict(inputs=x['inputs'][None], data_samples=[x['data_samples']]))['inputs']
                for pre, x in ((ours_pre, ours), (theirs_pre, ref_item)))
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    assert dataset.skipped == 1


def test_mmpretrain_swin_computes_as_mmdets():
    """The loader's premise, read from both libraries: mmpretrain's Swin (SimMIM's encoder) and mmdet's have the same
    keys and shapes, and with the same weights the same outputs (mmpretrain padding small maps, as mmdet does)."""
    from mmdet.models.backbones import SwinTransformer as MMDetSwin
    from mmpretrain.models import SwinTransformer as MMPretrainSwin
    torch.manual_seed(0)
    ours = MMPretrainSwin(arch=TINY, window_size=WINDOW, out_indices=(0, 1, 2, 3), pad_small_map=True,
                          drop_path_rate=0.)
    ours.eval()  # both libraries' train() return None
    with torch.no_grad():
        for p in ours.parameters():
            p.normal_(0, 0.2)
    det = MMDetSwin(**TINY, window_size=WINDOW, drop_path_rate=0.)
    det.eval()
    det.load_state_dict(ours.state_dict(), strict=True)
    x = torch.randn(2, 3, 64, SIZE)
    with torch.no_grad():
        for a, b in zip(ours(x), det(x)):
            assert torch.equal(a, b)


def swin_model(task: str, checkpoint, embed_dims: int = TINY['embed_dims']):
    """The shipped Swin-B SimMIM detector or UPerNet config with Swin at the toy widths; window 7 as shipped."""
    config = dict(det='det_configs/mask_rcnn_swin_b_simmim.py', seg='seg_configs/upernet_swin_b_simmim.py')[task]
    cfg = Config.fromfile(osp.join(ROOT, config))
    widths = [embed_dims * 2 ** i for i in range(4)]
    arch = dict(embed_dims=embed_dims, depths=TINY['depths'], num_heads=TINY['num_heads'])
    cfg.merge_from_dict({'model.backbone': dict(arch, init_cfg=dict(checkpoint=str(checkpoint)))})
    if task == 'det':
        cfg.merge_from_dict({'model.neck.in_channels': widths})
    else:
        cfg.merge_from_dict({'model.decode_head.in_channels': widths, 'model.auxiliary_head.in_channels': widths[2],
                             'model.decode_head.channels': 32, 'model.auxiliary_head.channels': 16})
    init_default_scope(dict(det='mmdet', seg='mmseg')[task])
    from mmengine.registry import MODELS
    return MODELS.build(cfg.model)


@pytest.mark.parametrize('task', ['det', 'seg'])
def test_detector_and_segmentor_swin_is_the_simmim_encoder(trained, task):
    """Every tensor of the SimMIM checkpoint is accounted for: the encoder's weights equal the model's Swin (tables
    resized from window 3 to 7), the output norms are new, the rest is named as dropped."""
    tmp, _ = trained
    path = tmp / 'work' / 'epoch_4.pth'
    with mmengine_checkpoints():
        src = torch.load(path, map_location='cpu')['state_dict']
    model = swin_model(task, path)
    model.init_weights()
    swin = model.backbone
    got = swin.state_dict()
    report = swin.load_simmim(str(path))  # the loader init_weights ran, for its report
    assert sorted(report['absent']) == sorted(k for k in got if k.startswith('norm'))  # norm0..3: new
    dropped = {k for k in src if not k.startswith('backbone.')} | {
        k[len('backbone.'):].replace('norm3.', 'norm.') for k in src
        if k.startswith(('backbone.norm3.', 'backbone.mask_token')) or k.endswith('relative_position_index')}
    assert set(report['dropped']) == dropped and any(k.startswith('neck.') for k in dropped)
    loaded = [k for k in got if not k.startswith('norm') and not k.endswith('relative_position_index')]
    assert report['loaded'] == len(loaded) and len(loaded) + len(dropped) == len(src)
    tables = 0
    for k in loaded:
        v = src[f'backbone.{k}']
        if k.endswith('relative_position_bias_table'):
            tables += 1
            assert v.shape[0] == 5 * 5 and got[k].shape == (13 * 13, v.shape[1])  # window 3 -> 7
            torch.testing.assert_close(got[k][6 * 13 + 6], v[2 * 5 + 2])  # offset (0, 0): the grid centre, kept
        else:
            assert torch.equal(got[k], v), k
    assert tables == sum(TINY['depths'])


def test_other_widths_are_a_named_error(trained):
    tmp, _ = trained
    path = tmp / 'work' / 'epoch_4.pth'
    with pytest.raises(CheckpointError, match=r'epoch_4.pth does not fit SimMIMSwinTransformer\(embed_dims=48.*'
                                              r'shape mismatches .*patch_embed\.projection\.weight \(48, 3, 4, 4\) '
                                              r'vs \(32, 3, 4, 4\)'):
        swin_model('det', path, embed_dims=48).init_weights()
