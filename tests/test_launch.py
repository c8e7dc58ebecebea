"""tools/dist_train.sh on CPU: two torchrun processes on gloo train Mask R-CNN + ConvNeXt V2-Atto for 2 iterations,
then `--resume` continues from the work dir's last checkpoint to iteration 4; tools/dist_test.sh on 2 processes then
gives the metrics of tools/test.py in one process."""
import json
import pickle
import os
import os.path as osp
import socket
import subprocess
import sys

import torch

from backbone.checkpoint import safe_load
from tools import test as test_tool
from toydata import coco_instances

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


CONFIG = osp.join(ROOT, 'det_configs', 'mask_rcnn_cnx2_a.py')


def options(runs, data_root, epochs: int) -> list:
    return runs.det_toy_options(data_root, batch=1, val=False) + [f'train_cfg.max_epochs={epochs}',
                                                         'model.backbone.init_cfg=None', 'find_unused_parameters=True']


def dist_train(runs, work, data_root, epochs: int, *extra, tool='dist_train.sh', args=('2',)) -> str:
    """Run tools/dist_train.sh (or dist_test.sh) with 2 processes (batch 1 each) and return its combined output."""
    env = dict(os.environ, PYTHON=sys.executable, PORT=str(free_port()), OMP_NUM_THREADS='1')
    cmd = ['bash', osp.join(ROOT, 'tools', tool), CONFIG, *args, '--work-dir', str(work), *extra,
           '--cfg-options', *options(runs, data_root, epochs)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc.stdout + proc.stderr


def test_dist_train_gloo_then_resume(tmp_path, runs):
    coco_instances(tmp_path / 'coco', train_images=4, val_images=3, size=(96, 64))
    work = tmp_path / 'work'
    log = dist_train(runs, work, tmp_path / 'coco', 1)
    assert 'Distributed launcher: pytorch' in log and 'GPU number: 2' in log and "'backend': 'gloo'" in log
    meta = safe_load(work / 'epoch_1.pth')['meta']
    assert (meta['epoch'], meta['iter']) == (1, 2)  # 4 images over 2 processes, batch 1 each

    log = dist_train(runs, work, tmp_path / 'coco', 2, '--resume')
    assert 'resumed epoch: 1, iter: 2' in log
    assert 'Epoch(train) [2][2/2]' in log
    meta = safe_load(work / 'epoch_2.pth')['meta']
    assert (meta['epoch'], meta['iter']) == (2, 4)

    # the trained checkpoint on 2 test processes (3 images: one rank gets a padded duplicate, dropped when gathered)
    ckpt = str(work / 'epoch_2.pth')
    one = test_tool.main([CONFIG, ckpt, '--work-dir', str(tmp_path / 'test1'), '--out', str(tmp_path / 'one.pkl'),
                          '--cfg-options', *options(runs, tmp_path / 'coco', 2)])
    log = dist_train(runs, tmp_path / 'test2', tmp_path / 'coco', 2, '--out', str(tmp_path / 'two.pkl'),
                     tool='dist_test.sh', args=(ckpt, '2'))
    assert 'GPU number: 2' in log and 'tools/test.py: wrote' in log
    two = json.loads((tmp_path / 'test2' / 'test_results.json').read_text())
    assert two['metrics'] == one['metrics'] and len(one['metrics']) == 12  # bbox and segm: 6 AP figures each
    preds = [pickle.loads((tmp_path / f'{n}.pkl').read_bytes()) for n in ('one', 'two')]  # files this test wrote
    assert [p['img_id'] for p in preds[0]] == [p['img_id'] for p in preds[1]] and len(preds[0]) == 3
    for a, b in zip(*preds):
        assert len(a['pred_instances']['scores']) > 0
        for key in ('bboxes', 'scores', 'labels'):
            torch.testing.assert_close(a['pred_instances'][key], b['pred_instances'][key], atol=1e-4, rtol=1e-4)
