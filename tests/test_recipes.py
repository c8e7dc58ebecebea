"""Every pretrain/ config encodes docs/RECIPES.md exactly (a hand-typed table here), and the optimizers built from the
configs give each parameter the lr scale and weight decay docs/RECIPES.md gives (hand-computed here). The lr is set
when a run starts (runtime.scale_lr): here for the official commands' single node of 8 GPUs."""
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import MODELS

import backbone  # noqa: F401
import pretrain  # noqa: F401
from pretrain.data import build_transform
from runtime import scale_lr

CONFIGS = Path(__file__).resolve().parents[1] / 'pretrain' / 'configs'
SIZES = ('atto', 'femto', 'pico', 'nano', 'tiny', 'base', 'large', 'huge')
DEPTHS = dict(atto=(2, 2, 6, 2), base=(3, 3, 27, 3), huge=(3, 3, 27, 3))
# docs/RECIPES.md "ImageNet-1K fine-tuning": blr, wd, (rule, layer decay), warm-up, epochs, smoothing, mixup, cutmix,
# drop path
FINETUNE = dict(
    atto=(2e-4, 0.3, ('single', 0.9), 0, 600, 0.2, 0.0, 0.0, 0.1),
    femto=(2e-4, 0.05, ('single', 0.9), 0, 600, 0.2, 0.3, 0.3, 0.0),
    pico=(2e-4, 0.3, ('single', 0.9), 0, 600, 0.2, 0.3, 0.3, 0.0),
    nano=(2e-4, 0.3, ('single', 0.9), 0, 600, 0.2, 0.5, 0.5, 0.1),
    tiny=(8e-4, 0.05, ('single', 0.9), 40, 300, 0.1, 0.8, 1.0, 0.2),
    base=(6.25e-4, 0.05, ('group', 0.6), 20, 100, 0.1, 0.8, 1.0, 0.1),
    large=(6.25e-4, 0.05, ('group', 0.6), 20, 100, 0.1, 0.8, 1.0, 0.2),
    huge=(1.25e-3, 0.05, ('single', 0.75), 10, 50, 0.1, 0.8, 1.0, 0.3))  # A.2: group-wise for B/L only; Table 11


def on_8_gpus(cfg):
    """cfg with the lr of the official commands' run: one node of 8 GPUs (TRAINING.md), the recipe's batch."""
    assert 'lr' not in cfg.optim_wrapper.optimizer  # not frozen when the config is parsed
    scale_lr(cfg, world_size=8)
    return cfg


def schedule(cfg, min_lr: float = 0.) -> tuple[int, int]:
    """(warm-up epochs, total epochs) read back from param_scheduler and train_cfg; the cosine ends at min_lr (times
    each group's layer-decay scale, as the official adjust_learning_rate)."""
    warm = [s for s in cfg.param_scheduler if s.type == 'LinearLR']
    cosine = [s for s in cfg.param_scheduler if s.type == 'CosineAnnealingLR']
    assert len(cosine) == 1 and 'end' not in cosine[0]  # cosine to min_lr at max_epochs
    if min_lr:
        assert 'eta_min' not in cosine[0]
        assert cosine[0].eta_min_ratio * cfg.optim_wrapper.optimizer.lr == pytest.approx(min_lr)
    else:
        assert cosine[0].eta_min == 0 and 'eta_min_ratio' not in cosine[0]
    assert all(s.by_epoch and s.convert_to_iter_based for s in cfg.param_scheduler)  # per-iteration lr
    warmup = warm[0].end if warm else 0
    assert cosine[0].begin == warmup
    return warmup, cfg.train_cfg.max_epochs


def test_one_config_per_size():
    assert sorted(p.name for p in CONFIGS.glob('fcmae_cnx2_*.py')) == sorted(f'fcmae_cnx2_{s}.py' for s in SIZES)
    assert sorted(p.name for p in CONFIGS.glob('finetune_cnx2_*.py')) == sorted(f'finetune_cnx2_{s}.py' for s in SIZES)
    assert all(len(p.read_text().splitlines()) <= 20 for p in CONFIGS.glob('*_cnx2_*.py'))


@pytest.mark.parametrize('size', SIZES)
def test_finetune_recipe(size):
    cfg = Config.fromfile(CONFIGS / f'finetune_cnx2_{size}.py')
    blr, wd, (rule, ld), warmup, epochs, smoothing, mixup, cutmix, drop_path = FINETUNE[size]
    opt = cfg.optim_wrapper
    assert cfg.model.backbone.arch == size and cfg.model.backbone.drop_path_rate == drop_path
    assert cfg.model.backbone.head_init_scale == 0.001
    assert cfg.blr == blr and cfg.auto_scale_lr == dict(enable=False, base_batch_size=1024)
    on_8_gpus(cfg)
    assert opt.optimizer.lr == pytest.approx(blr * 1024 / 256)
    assert opt.optimizer.type == 'AdamW' and opt.optimizer.weight_decay == wd
    assert opt.constructor == 'ConvNeXtV2LayerDecayConstructor'
    assert (opt.paramwise_cfg.decay_type, opt.paramwise_cfg.decay_rate) == (rule, ld)
    assert schedule(cfg, min_lr=1e-6) == (warmup, epochs)  # official main_finetune.py --min_lr 1e-6
    assert cfg.model.label_smoothing == smoothing and cfg.model.reinit_head is True
    assert (cfg.model.mixup.mixup_alpha, cfg.model.mixup.cutmix_alpha) == (mixup, cutmix)
    assert (opt.accumulative_counts, cfg.train_dataloader.batch_size) == (4, 32)  # official 8 GPUs × 32 × 4
    assert opt.type == 'DeviceAmpOptimWrapper'  # mmengine's AmpOptimWrapper (fp16) on a GPU
    train = cfg.train_dataloader.dataset.pipeline
    assert (train.type, train.size, train.auto_augment, train.re_prob) == ('finetune', 224, 'rand-m9-mstd0.5-inc1', .25)
    ema = [h for h in cfg.custom_hooks if 'EMA' in h.type]
    assert len(ema) == 1 and 1 - ema[0].momentum == 0.9999
    assert ema[0].type == 'OptimStepEMAHook' and 'interval' not in ema[0]  # one update per optimizer step, at run time
    assert cfg.val_dataloader.dataset.pipeline == dict(type='eval', size=224)
    assert cfg.val_cfg.type == 'RawAndEMAValLoop'  # official --model_ema_eval: raw and EMA, the best of each kept
    assert cfg.default_hooks.checkpoint.save_best == ['accuracy/top1', 'raw/accuracy/top1']


@pytest.mark.parametrize('size', SIZES)
def test_fcmae_recipe(size):
    cfg = Config.fromfile(CONFIGS / f'fcmae_cnx2_{size}.py')
    m, opt = cfg.model, cfg.optim_wrapper
    assert cfg.blr == 1.5e-4 and cfg.auto_scale_lr == dict(enable=False, base_batch_size=4096)
    on_8_gpus(cfg)
    assert (m.type, m.arch, m.patch_size, m.mask_ratio) == ('FCMAE', size, 32, 0.6)
    assert (m.decoder_depth, m.decoder_embed_dim, m.norm_pix_loss) == (1, 512, True)
    assert opt.optimizer.lr == pytest.approx(1.5e-4 * 4096 / 256) and opt.optimizer.lr == pytest.approx(2.4e-3)
    assert (opt.optimizer.type, opt.optimizer.betas, opt.optimizer.weight_decay) == ('AdamW', (0.9, 0.95), 0.05)
    assert opt.paramwise_cfg == dict(decay_rate=1.0, decay_type='single', grn_weight_decay=False)
    assert opt.constructor == 'FCMAEOptimWrapperConstructor' and opt.type == 'OptimWrapper'  # fp32
    assert m.init == 'trunc02' and cfg.train_dataloader.dataset.type == 'UnlabeledImageDataset'
    assert (opt.accumulative_counts, cfg.train_dataloader.batch_size) == (8, 64)  # official 8 GPUs × 64 × 8
    assert schedule(cfg) == (40, 800)
    assert cfg.train_dataloader.dataset.pipeline == dict(type='fcmae', size=224, scale=(0.2, 1.0))
    assert cfg.pretrained_key == 'model.init_cfg' and cfg.data_root == 'data/imagenet/'


def test_transforms_follow_the_official_code():
    fcmae = build_transform(dict(type='fcmae', size=224, scale=(0.2, 1.0))).transforms
    assert (fcmae[0].size, fcmae[0].scale, fcmae[0].interpolation.value) == ((224, 224), (0.2, 1.0), 'bicubic')
    assert [type(t).__name__ for t in fcmae] == ['RandomResizedCrop', 'RandomHorizontalFlip', 'PILToTensor']
    small, large = build_transform(dict(type='eval', size=224)), build_transform(dict(type='eval', size=384))
    assert (small.transforms[0].size, small.transforms[1].size) == (256, (224, 224))  # 224 / (224 / 256)
    assert large.transforms[0].size == (384, 384) and type(large.transforms[1]).__name__ == 'ToTensor'
    train = build_transform(dict(type='finetune', size=224)).transforms
    names = [type(t).__name__ for t in train]
    assert names[0] == 'RandomResizedCropAndInterpolation' and 'ColorJitter' not in names
    rand_aug = train[names.index('RandAugment')]
    assert {op.magnitude for op in rand_aug.ops} == {9} and rand_aug.num_layers == 2
    erasing = train[names.index('RandomErasing')]
    assert (erasing.probability, erasing.mode) == (0.25, 'pixel')


def recipe_layer_id(name: str, rule: str, depths) -> int:
    """docs/RECIPES.md 'Layer decay' (single, group), typed from the text (independent of backbone.layer_decay)."""
    parts = name.split('.')
    top = 12 if rule == 'group' else sum(depths)
    if parts[1] not in ('downsample_layers', 'stages'):
        return top + 1  # final norm, head
    s = int(parts[2])
    if rule == 'single':
        return sum(depths[:s]) + 1 + (int(parts[3]) if parts[1] == 'stages' else 0)
    if parts[1] == 'downsample_layers':
        return {0: 0, 1: 2, 2: 3, 3: 12}[s]
    return {0: 1, 1: 2, 2: 3 + int(parts[3]) // 3, 3: 12}[s]


@pytest.mark.parametrize('size', ['atto', 'base', 'huge'])
def test_finetune_optimizer_per_parameter(size):
    cfg = on_8_gpus(Config.fromfile(CONFIGS / f'finetune_cnx2_{size}.py'))
    with torch.device('meta'):  # names and shapes are all the optimizer constructor needs
        model = MODELS.build(cfg.model)
    wrapper = build_optim_wrapper(model, dict(cfg.optim_wrapper, type='OptimWrapper'))
    lr, wd = cfg.optim_wrapper.optimizer.lr, cfg.optim_wrapper.optimizer.weight_decay
    rule, ld = cfg.optim_wrapper.paramwise_cfg.decay_type, cfg.optim_wrapper.paramwise_cfg.decay_rate
    params = dict(model.named_parameters())
    got = {n: (g['lr'], g['weight_decay']) for g in wrapper.optimizer.param_groups for n in g['param_names']}
    assert sorted(got) == sorted(params)
    top = 12 if rule == 'group' else sum(DEPTHS[size])
    for name, p in params.items():
        exempt = p.ndim == 1 or name.endswith(('.bias', '.grn.gamma', '.grn.beta'))
        scale = ld ** (top + 1 - recipe_layer_id(name, rule, DEPTHS[size]))
        assert got[name] == (pytest.approx(lr * scale), 0. if exempt else wd), name
    spot = dict(atto={'backbone.downsample_layers.0.0.weight': 0.9 ** 12, 'backbone.stages.3.1.pwconv1.weight': 0.9,
                      'backbone.head.weight': 1.0},
                base={'backbone.downsample_layers.0.0.weight': 0.6 ** 13, 'backbone.stages.2.26.pwconv1.weight': 0.36,
                      'backbone.stages.3.0.dwconv.weight': 0.6, 'backbone.head.weight': 1.0},
                huge={'backbone.downsample_layers.0.0.weight': 0.75 ** 36,  # layer ids 1..36 (official single rule)
                      'backbone.stages.2.26.pwconv1.weight': 0.75 ** 4,
                      'backbone.stages.3.2.dwconv.weight': 0.75, 'backbone.head.weight': 1.0})[size]
    for name, scale in spot.items():
        assert got[name][0] == pytest.approx(lr * scale), name


@pytest.mark.parametrize('grn_weight_decay', [False, True])
def test_fcmae_optimizer_no_layer_decay_and_grn_weight_decay_switch(grn_weight_decay):
    """Default: GRN γ/β exempt as in fine-tuning; True: decayed as the official main_pretrain.py (timm
    add_weight_decay: only 1-D tensors and biases exempt; the mask token decays in both)."""
    cfg = on_8_gpus(Config.fromfile(CONFIGS / 'fcmae_cnx2_atto.py'))
    cfg.optim_wrapper.paramwise_cfg.grn_weight_decay = grn_weight_decay
    with torch.device('meta'):
        model = MODELS.build(cfg.model)
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    got = {n: (g['lr'], g['weight_decay']) for g in wrapper.optimizer.param_groups for n in g['param_names']}
    assert sorted(got) == sorted(n for n, _ in model.named_parameters())
    assert all(lr == pytest.approx(2.4e-3) for lr, _ in got.values())  # decay rate 1: no layer decay
    for name, p in model.named_parameters():
        exempt = p.ndim == 1 or name.endswith('.bias') or (name.endswith(('grn.gamma', 'grn.beta')) and
                                                           not grn_weight_decay)
        assert got[name][1] == (0. if exempt else 0.05), name
    grn = 0.05 if grn_weight_decay else 0.
    assert got['encoder.stages.2.5.grn.gamma'][1] == got['decoder.0.grn.beta'][1] == grn
    assert got['decoder.0.pwconv1.bias'][1] == got['encoder.stages.0.0.norm.weight'][1] == 0.
    assert got['mask_token'][1] == got['encoder.stages.2.5.pwconv1.weight'][1] == got['pred.weight'][1] == 0.05


@pytest.mark.parametrize('config, benchmark, workers', [
    ('pretrain/configs/fcmae_cnx2_atto.py', True, 10), ('pretrain/configs/finetune_cnx2_atto.py', True, 10),
    ('det_configs/mask_rcnn_cnx2_a.py', False, 8), ('seg_configs/upernet_cnx2_a.py', True, 4)])
def test_loader_cudnn_and_seed_settings(config, benchmark, workers):
    """docs/RECIPES.md "Operational values": cuDNN autotuning as the official main_*.py (True), mmdet's and mmseg's
    runtimes (False, True); workers as main_*.py (10), mmdet-V2 (8), mmseg's ADE20K (4); seed 0 + rank everywhere;
    epoch-based training loaders restart their workers each epoch, seeded from the main RNG (exact resume)."""
    cfg = Config.fromfile(CONFIGS.parents[1] / config)
    loader = cfg.train_dataloader
    assert cfg.env_cfg.cudnn_benchmark is benchmark and loader.num_workers == workers
    assert cfg.randomness == dict(seed=0, diff_rank_seed=True)
    if 'max_epochs' in cfg.train_cfg:  # epoch-based (segmentation: one iterator for the whole run)
        assert loader.persistent_workers is False and loader.worker_init_fn == dict(type='epoch_worker_init_fn')
