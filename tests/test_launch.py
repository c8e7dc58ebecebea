"""tools/dist_train.sh on CPU: two torchrun processes on gloo train Mask R-CNN + ConvNeXt V2-Atto for 2 iterations,
then `--resume` continues from the work dir's last checkpoint to iteration 4."""
import os
import os.path as osp
import socket
import subprocess
import sys

from backbone.checkpoint import safe_load
from test_det_train import toy_options
from tools.make_toy_data import coco_instances

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def dist_train(work, data_root, epochs: int, *extra) -> str:
    """Run tools/dist_train.sh with 2 processes (batch 1 each) and return its combined output."""
    env = dict(os.environ, PYTHON=sys.executable, PORT=str(free_port()), OMP_NUM_THREADS='1')
    opts = toy_options(data_root, batch=1, val=False) + [f'train_cfg.max_epochs={epochs}',
                                                         'model.backbone.init_cfg=None', 'find_unused_parameters=True']
    cmd = ['bash', osp.join(ROOT, 'tools', 'dist_train.sh'), osp.join(ROOT, 'det_configs', 'mask_rcnn_cnx2_a.py'),
           '2', '--work-dir', str(work), *extra, '--cfg-options', *opts]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc.stdout + proc.stderr


def test_dist_train_gloo_then_resume(tmp_path):
    coco_instances(tmp_path / 'coco', train_images=4, val_images=1, size=(96, 64))
    work = tmp_path / 'work'
    log = dist_train(work, tmp_path / 'coco', 1)
    assert 'Distributed launcher: pytorch' in log and 'GPU number: 2' in log and "'backend': 'gloo'" in log
    meta = safe_load(work / 'epoch_1.pth')['meta']
    assert (meta['epoch'], meta['iter']) == (1, 2)  # 4 images over 2 processes, batch 1 each

    log = dist_train(work, tmp_path / 'coco', 2, '--resume')
    assert 'resumed epoch: 1, iter: 2' in log
    assert 'Epoch(train) [2][2/2]' in log
    meta = safe_load(work / 'epoch_2.pth')['meta']
    assert (meta['epoch'], meta['iter']) == (2, 4)
