"""The config side of tools/train.py (runtime.config): --amp-dtype on a GPU machine and its fp32 fallback without
CUDA, the Slurm task environment for --launcher slurm, and the pretrained-checkpoint check that lets model-zoo names
and URLs through but names a missing local file."""
import os.path as osp

import pytest
import torch

from runtime import check_pretrained, load_cfg, slurm_env

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
FCMAE = osp.join(ROOT, 'pretrain', 'configs', 'fcmae_cnx2_atto.py')


@pytest.mark.parametrize('dtype', ['float16', 'bfloat16'])
def test_amp_dtype_sets_amp_optim_wrapper_on_a_gpu_machine(tmp_path, monkeypatch, dtype):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)  # only the config is built, nothing runs
    cfg = load_cfg(FCMAE, {}, str(tmp_path), 'none', amp_dtype=dtype)
    assert (cfg.optim_wrapper.type, cfg.optim_wrapper.dtype, cfg.optim_wrapper.loss_scale) == (
        'AmpOptimWrapper', dtype, 'dynamic')


def test_amp_falls_back_to_fp32_without_cuda(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    cfg = load_cfg(FCMAE, {}, str(tmp_path), 'none', amp_dtype='bfloat16')
    assert cfg.optim_wrapper.type == 'OptimWrapper' and 'dtype' not in cfg.optim_wrapper
    assert 'no CUDA device, so AmpOptimWrapper -> OptimWrapper (fp32)' in capsys.readouterr().err


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
