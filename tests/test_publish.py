"""Published checkpoints (runtime/publish.py, tools/publish.py): after training, PublishCheckpointHook writes the final
checkpoint weights-only (EMA weights where the run has EMA, dataset_meta, the config name) as <name>-<sha256[:8]>.pth,
which torch's default weights_only=True load accepts and the training checkpoint is refused by; tools/publish.py does
the same for any checkpoint and names bad input. Every base config names the hook and logs to TensorBoard.
(The stock DetInferencer / MMSegInferencer on published files of real runs: tests/test_infer.py.)"""
import argparse
import hashlib
import os.path as osp
import pickle
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from torch.utils.data import Dataset

from runtime import SafeLoadRunner, load_cfg
from tools.publish import main as publish_tool
from tools.train import parse_args

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENT = 'toy_config'  # mmengine appends _<timestamp>, as to a config's name: meta names toy_config.py


class Labeled(Dataset):
    """Eight 2-vectors with class names in metainfo, which mmengine saves as meta['dataset_meta']."""
    metainfo = dict(classes=('circle', 'square'), palette=[(255, 0, 0), (0, 0, 255)])

    def __len__(self):
        return 8

    def __getitem__(self, i):
        return dict(inputs=torch.full((2,), float(i)))


@pytest.fixture
def ema_run(tmp_path, toy_model):
    """Two epochs of the toy model with mmengine's EMAHook (momentum 0.5), checkpoints and the publish hook."""
    torch.manual_seed(0)
    runner = SafeLoadRunner(
        model=toy_model(), work_dir=str(tmp_path / 'work'), experiment_name=EXPERIMENT,
        train_dataloader=dict(dataset=Labeled(), sampler=dict(type='DefaultSampler', shuffle=False), batch_size=4,
                              collate_fn=dict(type='default_collate'), num_workers=0),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.05)), train_cfg=dict(by_epoch=True, max_epochs=2),
        default_hooks=dict(checkpoint=dict(type='AtomicCheckpointHook', interval=1),
                           publish=dict(type='PublishCheckpointHook')),
        custom_hooks=[dict(type='EMAHook', momentum=0.5)])
    runner.train()
    return runner, tmp_path / 'work'


def sha8(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:8]


def test_hook_publishes_the_ema_weights_weights_only(ema_run):
    runner, work = ema_run
    [published] = (work / 'published').glob('*.pth')
    assert published.name == f'{runner.experiment_name}-{sha8(published)}.pth'  # no config file: the run's name
    ckpt = torch.load(published)  # torch's default: weights_only=True, as mmengine's load_checkpoint calls it
    assert set(ckpt) == {'state_dict', 'meta'}
    assert ckpt['meta'] == dict(config='toy_config.py', dataset_meta=Labeled.metainfo, epoch=2, iter=4,
                                mmengine_version=ckpt['meta']['mmengine_version'])
    ema = next(h for h in runner.hooks if type(h).__name__ == 'EMAHook').ema_model.module.state_dict()
    raw = runner.model.state_dict()
    for key, value in ckpt['state_dict'].items():
        assert torch.equal(value, ema[key]), key  # the averaged weights, as mmengine's EMAHook swaps them in
        assert not torch.equal(value, raw[key]), key
    with pytest.raises(pickle.UnpicklingError, match='Weights only load failed'):
        torch.load(work / 'epoch_2.pth')  # the training checkpoint: message hub, optimizer -> refused


def test_tool_publishes_the_same_bytes_and_names_bad_input(ema_run, tmp_path, capsys):
    work = ema_run[1]
    [by_hook] = (work / 'published').glob('*.pth')
    out = Path(publish_tool([str(work / 'epoch_2.pth'), str(tmp_path)]))  # a folder: <folder>/<ckpt name>-<sha>
    assert out.name == f'epoch_2-{sha8(by_hook)}.pth' and out.read_bytes() == by_hook.read_bytes()
    assert Path(publish_tool([str(out)])) == out  # a published file publishes to itself: same content, same name
    assert 'tools/publish.py: wrote' in capsys.readouterr().out
    assert not list(tmp_path.glob('.*tmp*'))  # no temporary file left behind

    def fails(path, match):
        with pytest.raises(SystemExit, match=match):
            publish_tool([str(path), str(tmp_path / 'bad')])
        assert not list(tmp_path.glob('bad*'))
    fails(tmp_path / 'missing.pth', r'missing.pth: no such file')
    (tmp_path / 'notes.pth').write_text('not a checkpoint')
    fails(tmp_path / 'notes.pth', r'notes.pth: (not a readable checkpoint|cannot read)')
    torch.save(dict(model=dict(w=torch.ones(1))), tmp_path / 'official.pth')
    fails(tmp_path / 'official.pth', r"official.pth: no state_dict \(top-level keys: \['model'\]\)")
    torch.save(dict(state_dict=dict(w=torch.ones(1), steps=3)), tmp_path / 'odd.pth')
    fails(tmp_path / 'odd.pth', r"odd.pth: state_dict entries that are not tensors: \['steps'\]")
    meta = dict(dataset_meta=argparse.Namespace(classes=('a',)))  # read by safe_load, refused by torch's default
    torch.save(dict(state_dict=dict(w=torch.ones(1)), meta=meta), tmp_path / 'meta.pth')
    fails(tmp_path / 'meta.pth', 'does not load with weights_only=True.*plain values only')


LEAVES = ['pretrain/configs/fcmae_cnx2_atto.py', 'pretrain/configs/finetune_cnx2_atto.py',
          'det_configs/mask_rcnn_cnx2_a.py', 'det_configs/mask_rcnn_swin_b_simmim.py',
          'seg_configs/upernet_cnx2_a.py', 'seg_configs/upernet_swin_b_simmim.py']


@pytest.mark.parametrize('leaf', LEAVES, ids=osp.basename)
def test_every_stage_publishes_and_logs_to_tensorboard(leaf):
    cfg = Config.fromfile(ROOT / leaf)
    assert cfg.default_hooks.publish == dict(type='PublishCheckpointHook')
    assert [b.type for b in cfg.visualizer.vis_backends] == ['LocalVisBackend', 'TensorboardVisBackend']


def test_vis_backend_flag_replaces_the_backends():
    args = parse_args(['c.py', '--vis-backend', 'local', '--cfg-options', 'train_cfg.max_epochs=1'])
    cfg = load_cfg(str(ROOT / LEAVES[2]), args.cfg_options, None, 'none')
    assert cfg.visualizer.vis_backends == [dict(type='LocalVisBackend')] and cfg.train_cfg.max_epochs == 1
    assert not hasattr(args, 'vis_backend')  # folded into cfg_options: tools/train.py passes the rest to runtime
    with pytest.raises(SystemExit):
        parse_args(['c.py', '--vis-backend', 'mlflow'])
