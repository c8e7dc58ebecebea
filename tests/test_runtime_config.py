"""The config side of tools/train.py (runtime.config): --amp-dtype on a GPU machine and without CUDA (the same
wrapper), the Slurm task environment for --launcher slurm, and the pretrained-checkpoint check that lets model-zoo names
and URLs through but names a missing local file. The launch path (runtime.dist.setup_dist): one function for srun and
torchrun tasks on GPU (nccl, cuda:LOCAL_RANK; CUDA faked) and CPU (gloo); the lr set from the run (scale_lr)."""
import logging
import os
import os.path as osp

import pytest
import torch

from runtime import backend_and_device, check_pretrained, load_cfg, scale_lr, setup_dist, slurm_env
from runtime.dist import TORCHRUN_VARS

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
FCMAE = osp.join(ROOT, 'pretrain', 'configs', 'fcmae_cnx2_atto.py')
FINETUNE = osp.join(ROOT, 'pretrain', 'configs', 'finetune_cnx2_atto.py')


@pytest.mark.parametrize('dtype', ['float16', 'bfloat16'])
def test_amp_dtype_sets_amp_optim_wrapper_on_a_gpu_machine(tmp_path, monkeypatch, dtype):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)  # only the config is built, nothing runs
    cfg = load_cfg(FCMAE, {}, str(tmp_path), 'none', amp_dtype=dtype)
    assert (cfg.optim_wrapper.type, cfg.optim_wrapper.dtype, cfg.optim_wrapper.loss_scale) == (
        'DeviceAmpOptimWrapper', dtype, 'dynamic')


def test_amp_dtype_is_kept_without_cuda_and_stock_amp_becomes_ours(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    cfg = load_cfg(FCMAE, {}, str(tmp_path), 'none', amp_dtype='bfloat16')  # autocast on the CPU (tests/test_amp.py)
    assert (cfg.optim_wrapper.type, cfg.optim_wrapper.dtype) == ('DeviceAmpOptimWrapper', 'bfloat16')
    stock = {'optim_wrapper.type': 'AmpOptimWrapper', 'optim_wrapper.dtype': 'bfloat16'}  # asserts a GPU when built
    cfg = load_cfg(FCMAE, stock, str(tmp_path), 'none')
    assert (cfg.optim_wrapper.type, cfg.optim_wrapper.dtype) == ('DeviceAmpOptimWrapper', 'bfloat16')
    assert 'AmpOptimWrapper -> DeviceAmpOptimWrapper (bfloat16 autocast on the CPU)' in capsys.readouterr().err


def test_slurm_env_follows_the_srun_task(monkeypatch):
    for key, value in dict(SLURM_PROCID='3', SLURM_NTASKS='4', SLURM_LOCALID='1', SLURM_NODELIST='node[1-2]',
                           MASTER_ADDR='node1', MASTER_PORT='29511').items():
        monkeypatch.setenv(key, value)
    assert slurm_env() == dict(RANK='3', WORLD_SIZE='4', LOCAL_RANK='1', MASTER_PORT='29511')  # MASTER_ADDR kept
    monkeypatch.delenv('MASTER_PORT')
    assert slurm_env()['MASTER_PORT'] == '29500'  # mmengine's and torch's default
    monkeypatch.delenv('SLURM_PROCID')
    with pytest.raises(RuntimeError, match='--launcher slurm: SLURM_PROCID not set; start the tasks with srun'):
        slurm_env()


def test_check_pretrained_passes_zoo_names_and_urls_but_names_a_missing_file(tmp_path):
    cfg = load_cfg(osp.join(ROOT, 'pretrain', 'configs', 'finetune_cnx2_atto.py'), {}, str(tmp_path), 'none')
    for remote in ('convnextv2_atto.fcmae', 'https://example.invalid/fcmae.pt'):
        cfg.model.backbone.init_cfg = dict(type='Pretrained', checkpoint=remote)
        check_pretrained(cfg)
    cfg.model.backbone.init_cfg = dict(type='Pretrained', checkpoint=str(tmp_path / 'nowhere.pth'))
    with pytest.raises(FileNotFoundError, match=r'model\.backbone\.init_cfg\.checkpoint: .*nowhere\.pth'):
        check_pretrained(cfg)


def fake_group(monkeypatch, cuda: bool) -> list:
    """torch.distributed as far as setup_dist touches it, recording calls; CUDA present or not (torch.cuda faked):
    the process group itself is not started, so the GPU branch runs on a machine without a GPU."""
    calls, state = [], dict(up=False)
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: cuda)
    monkeypatch.setattr(torch.cuda, 'set_device', lambda index: calls.append(('set_device', index)))

    def init(backend, timeout):
        calls.append(('init_process_group', backend, timeout.total_seconds()))
        state['up'] = True
    monkeypatch.setattr(torch.distributed, 'init_process_group', init)
    monkeypatch.setattr(torch.distributed, 'is_initialized', lambda: state['up'])
    monkeypatch.setattr(torch.distributed, 'get_rank', lambda: int(os.environ['RANK']))
    monkeypatch.setattr(torch.distributed, 'get_world_size', lambda: int(os.environ['WORLD_SIZE']))
    return calls


SRUN_TASK = dict(SLURM_PROCID='3', SLURM_NTASKS='4', SLURM_LOCALID='1', SLURM_NODELIST='node[1-2]',
                 MASTER_ADDR='node1', MASTER_PORT='29511')


@pytest.mark.parametrize('cuda', [True, False])
def test_setup_dist_one_path_for_gpu_and_cpu_srun_tasks(tmp_path, monkeypatch, cuda):
    monkeypatch.setattr(os, 'environ', dict(os.environ, **SRUN_TASK))  # what setup_dist sets stays in this test
    for key in TORCHRUN_VARS[:3]:
        os.environ.pop(key, None)
    calls = fake_group(monkeypatch, cuda)
    cfg = load_cfg(FINETUNE, {}, str(tmp_path), 'slurm')
    assert setup_dist(cfg) == (3, 4)
    assert {k: os.environ[k] for k in TORCHRUN_VARS} == dict(RANK='3', WORLD_SIZE='4', LOCAL_RANK='1',
                                                            MASTER_ADDR='node1', MASTER_PORT='29511')
    backend = 'nccl' if cuda else 'gloo'
    assert calls == [('set_device', 1)] * cuda + [('init_process_group', backend, 1800.)]
    assert cfg.env_cfg.dist_cfg.backend == backend
    assert cfg.model_wrapper_cfg == dict(type='MMDistributedDataParallel', broadcast_buffers=False,
                                         find_unused_parameters=False, device_ids=[1] if cuda else None)
    assert backend_and_device(1)[1] == (torch.device('cuda', 1) if cuda else torch.device('cpu'))
    assert setup_dist(cfg) == (3, 4) and len([c for c in calls if c[0] == 'init_process_group']) == 1  # once


def test_setup_dist_needs_a_launcher_environment(tmp_path, monkeypatch):
    monkeypatch.setattr(os, 'environ', {k: v for k, v in os.environ.items() if k not in TORCHRUN_VARS})
    fake_group(monkeypatch, cuda=False)
    assert setup_dist(load_cfg(FINETUNE, {}, str(tmp_path), 'none')) == (0, 1)
    with pytest.raises(RuntimeError, match='--launcher pytorch: .*missing here: RANK, WORLD_SIZE, LOCAL_RANK, '
                                           'MASTER_ADDR, MASTER_PORT'):
        setup_dist(load_cfg(FINETUNE, {}, str(tmp_path), 'pytorch'))


def recipe_cfg(tmp_path, config, **options):
    return load_cfg(config, options, str(tmp_path), 'none')


def test_lr_follows_the_run_by_the_linear_rule(tmp_path):
    """FCMAE: blr 1.5e-4, recipe batch 4096 = 8 × 64 × 8; fine-tuning atto: blr 2e-4, batch 1024 = 8 × 32 × 4."""
    cfg = recipe_cfg(tmp_path, FCMAE)
    assert 'lr' not in cfg.optim_wrapper.optimizer  # not frozen when the config is parsed
    message, level = scale_lr(cfg, world_size=8)
    assert cfg.optim_wrapper.optimizer.lr == pytest.approx(2.4e-3) and level == logging.INFO
    assert message == ('lr: world size 8 × batch 64 × accumulation 8 = effective 4096; '
                       'lr = blr × 4096 / 256 = 0.00015 × 4096 / 256 = 0.0024')
    assert cfg.param_scheduler[1].eta_min == 0 and not cfg.auto_scale_lr.enable  # absolute floor; no 2nd scaling

    cfg = recipe_cfg(tmp_path, FCMAE, **{'train_dataloader.batch_size': 16})  # 2 × 16 × 8 = 256
    message, level = scale_lr(cfg, world_size=2)
    assert cfg.optim_wrapper.optimizer.lr == pytest.approx(2.4e-3) and level == logging.WARNING  # the recipe's lr
    assert message == ('lr: world size 2 × batch 16 × accumulation 8 = effective 256; but the recipe is for batch '
                       '4096 (auto_scale_lr.base_batch_size): lr stays blr × 4096 / 256 = 0.00015 × 4096 / 256 = '
                       '0.0024; '
                       '--auto-scale-lr gives blr × 256 / 256 = 0.00015 × 256 / 256 = 0.00015')
    cfg = recipe_cfg(tmp_path, FCMAE, **{'train_dataloader.batch_size': 16})
    assert scale_lr(cfg, world_size=2, auto_scale=True)[0].endswith(
        'lr = blr × 256 / 256 = 0.00015 × 256 / 256 = 0.00015 (--auto-scale-lr; recipe batch 4096)')
    assert cfg.optim_wrapper.optimizer.lr == pytest.approx(1.5e-4)

    cfg = recipe_cfg(tmp_path, FINETUNE, **{'optim_wrapper.accumulative_counts': 1})  # 4 × 32 × 1 = 128
    scale_lr(cfg, world_size=4, auto_scale=True)
    lr = 2e-4 * 128 / 256
    assert cfg.optim_wrapper.optimizer.lr == pytest.approx(lr)
    assert cfg.param_scheduler[0].eta_min_ratio == pytest.approx(1e-6 / lr)  # the floor stays min_lr 1e-6

    cfg = recipe_cfg(tmp_path, FINETUNE, **{'optim_wrapper.optimizer.lr': 1e-3})  # the official --lr: as given
    scale_lr(cfg, world_size=8)
    assert cfg.optim_wrapper.optimizer.lr == 1e-3 and cfg.param_scheduler[0].eta_min_ratio == pytest.approx(1e-3)


def test_detection_keeps_its_base_batch_and_auto_scale_lr_needs_one(tmp_path):
    cfg = recipe_cfg(tmp_path, osp.join(ROOT, 'det_configs', 'mask_rcnn_cnx2_a.py'))
    message, level = scale_lr(cfg, world_size=2, auto_scale=True)  # 2 × 4 × 1 = 8 of 32
    assert cfg.optim_wrapper.optimizer.lr == pytest.approx(1e-4 * 8 / 32)
    assert message.endswith('effective 8; lr = 0.0001 × 8 / 32 = 2.5e-05 (--auto-scale-lr; recipe batch 32)')
    cfg = recipe_cfg(tmp_path, FCMAE)
    cfg.auto_scale_lr = dict(enable=False)  # no base_batch_size
    with pytest.raises(KeyError, match=r'--auto-scale-lr: .*fcmae_cnx2_atto.py has no auto_scale_lr.base_batch_size'):
        scale_lr(cfg, world_size=1, auto_scale=True)
