"""FCMAE pre-training end to end on a generated ImageNet-style folder: tools/train.py on the atto
config lowers the loss, skips a corrupt image by name, saves checkpoints that load strictly into ConvNeXtV2 and resume
through tools/pretrain.sh; a NaN loss stops the run with the last good checkpoint intact; reconstructions are drawn."""
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from backbone import ConvNeXtV2
from backbone.checkpoint import load_pretrained
from tools import visualize_fcmae
from toydata import imagenet_folder

ROOT = Path(__file__).resolve().parents[1]
CONFIG = 'pretrain/configs/fcmae_cnx2_atto.py'
EPOCHS = 20
# One repeated batch (4 images, sequential sampler, full-image crops), constant lr 2e-3: the loss falls only by learning
TINY = [f'train_dataloader.dataset.{o}' for o in ('pipeline.size=64', 'pipeline.scale=[1.0,1.0]')] + [
    'train_dataloader.batch_size=4', 'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
    'train_dataloader.sampler.shuffle=False', 'optim_wrapper.accumulative_counts=1', 'optim_wrapper.optimizer.lr=2e-3',
    'model.decoder_embed_dim=64', 'param_scheduler.0.start_factor=1.0', f'param_scheduler.0.end={EPOCHS - 1}',
    f'param_scheduler.1.begin={EPOCHS - 1}', 'default_hooks.logger.interval=1', 'default_hooks.checkpoint.interval=6']


def run(cmd: list, **env) -> subprocess.CompletedProcess:
    """One thread per process unless asked otherwise: OpenMP threads on busy shared cores run ~50x slower."""
    env = {'OMP_NUM_THREADS': '1', **os.environ, **env}
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)


def train(data, work_dir, *extra, epochs=EPOCHS, options=()) -> subprocess.CompletedProcess:
    return run([sys.executable, 'tools/train.py', CONFIG, '--work-dir', str(work_dir), *extra, '--cfg-options',
                f'data_root={data}', f'train_cfg.max_epochs={epochs}', *TINY, *options])


def scalars(work_dir) -> list[dict]:
    """Logged scalars of every run in work_dir, oldest run first."""
    files = sorted(Path(work_dir).glob('*/vis_data/scalars.json'))
    return [json.loads(line) for f in files for line in f.read_text().splitlines()]


def clone(src, dst) -> Path:
    """A copy of a work dir whose `last_checkpoint` (an absolute path) points into the copy."""
    shutil.copytree(src, dst)
    last = Path(dst) / 'last_checkpoint'
    last.write_text(str(Path(dst) / Path(last.read_text().strip()).name))
    return Path(dst)


def sha(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """EPOCHS epochs of one iteration (5 files, batch 4, drop_last); the corrupt file sorts first: skipped per epoch."""
    tmp = tmp_path_factory.mktemp('fcmae')
    toy = imagenet_folder(tmp / 'data', classes=4, train_per_class=1, val_per_class=1, size=64)
    corrupt = Path(toy['train'][0][0]).parent / 'corrupt.JPEG'
    corrupt.write_bytes(b'\xff\xd8\xff\xe0 not really a JPEG')
    result = train(tmp / 'data', tmp / 'work')
    assert result.returncode == 0, result.stderr[-3000:]
    return tmp, corrupt, result


def test_loss_falls_and_corrupt_image_is_skipped(trained):
    tmp, corrupt, result = trained
    logs = scalars(tmp / 'work')
    assert [r['iter'] for r in logs] == list(range(1, EPOCHS + 1))
    loss = [r['loss'] for r in logs]
    assert np.mean(loss[-3:]) < np.mean(loss[:3]) - 0.01, loss  # starts at ~1.0 (norm-pix target, ~0 prediction)
    assert [r['skipped_images'] for r in logs] == list(range(1, EPOCHS + 1))  # one skip per epoch, counted
    assert f'skipped unreadable image {corrupt}' in result.stdout + result.stderr


def test_checkpoint_loads_strictly_into_convnextv2(trained):
    tmp = trained[0]
    ckpt = torch.load(tmp / 'work' / f'epoch_{EPOCHS}.pth', map_location='cpu', weights_only=False)  # this run's
    model = ConvNeXtV2('atto')
    report = load_pretrained(model, tmp / 'work' / f'epoch_{EPOCHS}.pth')
    assert report['format'] == 'ours' and not report['errors']
    assert {k.split('.')[0] for k in report['dropped']} == {'proj', 'mask_token', 'decoder', 'pred'}
    own = model.state_dict()
    for key, value in ckpt['state_dict'].items():
        if key.startswith('encoder.'):
            assert torch.equal(own[key.removeprefix('encoder.')], value), key
    assert sorted(k for k in own if not k.startswith('norm')) == sorted(
        k.removeprefix('encoder.') for k in ckpt['state_dict'] if k.startswith('encoder.'))


def test_resume_through_pretrain_sh(trained):
    tmp = trained[0]
    work = clone(tmp / 'work', tmp / 'resume')
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = str(s.getsockname()[1])
    result = run(['bash', 'tools/pretrain.sh', CONFIG, '1', '--work-dir', str(work), '--cfg-options',
                  f'data_root={tmp / "data"}', f'train_cfg.max_epochs={EPOCHS + 2}', *TINY],
                 PYTHON=sys.executable, PORT=port)
    assert result.returncode == 0, result.stderr[-3000:]
    assert [r['iter'] for r in scalars(work)] == list(range(1, EPOCHS + 3))  # continues after the last iteration
    assert (work / f'epoch_{EPOCHS + 2}.pth').is_file()
    resumed = torch.load(work / f'epoch_{EPOCHS + 2}.pth', map_location='cpu', weights_only=False)
    assert (resumed['meta']['epoch'], resumed['meta']['iter']) == (EPOCHS + 2, EPOCHS + 2)


def test_nan_loss_stops_and_keeps_last_good_checkpoint(trained):
    tmp = trained[0]
    work = clone(tmp / 'work', tmp / 'nan')
    good = work / f'epoch_{EPOCHS}.pth'
    before = sha(good)
    zero_std = ['model.data_preprocessor.type=ImgDataPreprocessor', 'model.data_preprocessor.mean=[0,0,0]',
                'model.data_preprocessor.std=[0,0,0]']  # inputs / 0: inf and NaN pixels from the next batch on
    result = train(tmp / 'data', work, '--resume', epochs=EPOCHS + 2, options=zero_std)
    assert result.returncode != 0
    message = f'FloatingPointError: non-finite loss (nan) at iteration {EPOCHS + 1}'
    assert message in result.stderr, result.stderr[-3000:]
    assert str(good) in result.stderr  # the message names the checkpoint that is kept
    assert sha(good) == before and not (work / f'epoch_{EPOCHS + 1}.pth').exists()
    assert (work / 'last_checkpoint').read_text().strip() == str(good)


def test_visualization_grid(trained, tmp_path):
    tmp = trained[0]
    image = sorted((tmp / 'data' / 'val').glob('*/*.JPEG'))[0]
    out, = visualize_fcmae.main([CONFIG, str(tmp / 'work' / f'epoch_{EPOCHS}.pth'), str(image), '--out-dir',
                                 str(tmp_path), '--size', '64', '--cfg-options', 'model.decoder_embed_dim=64'])
    grid = np.asarray(Image.open(out))
    assert grid.shape == (64, 4 * 64 + 3 * 4, 3)
    original, masked, recon, pasted = (grid[:, i * 68:i * 68 + 64].astype(int) for i in range(4))
    assert np.array_equal(original, np.asarray(Image.open(image).convert('RGB')))  # 64 px: resize/crop are no-ops
    hidden = 0
    for r in range(2):
        for c in range(2):
            cell = np.s_[r * 32:(r + 1) * 32, c * 32:(c + 1) * 32]
            if (masked[cell] == 127).all() and not (original[cell] == 127).all():  # a masked patch
                hidden += 1
                assert np.array_equal(pasted[cell], recon[cell])
            else:  # a visible patch is shown and pasted back unchanged
                assert np.array_equal(masked[cell], original[cell]) and np.array_equal(pasted[cell], original[cell])
    assert hidden == 4 - int(4 * (1 - 0.6))  # mask ratio 0.6 keeps int(L·0.4) = 1 of 4 patches
