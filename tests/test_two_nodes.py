"""Two nodes simulated on one machine: tools/dist_train.sh started twice at once with NNODES=2, NODE_RANK=0 and 1,
MASTER_ADDR=127.0.0.1 and one gloo process per "node" trains fine-tuning atto to the weights of one node with two
processes and the same global batch (bitwise: same ranks, same reductions); the lr follows the run
(--auto-scale-lr: 2 processes × batch 2 = 4); global rank 0 alone runs the preflight, not node 1's local rank 0."""
import os
import socket
import subprocess
import sys

import torch

from runtime import mmengine_checkpoints
from toydata import imagenet_folder

LEAF = '''_base_ = '{base}'
model = dict(backbone=dict(num_classes=2))
train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False, pin_memory=False,
                        dataset=dict(pipeline=dict(size=32)))
optim_wrapper = dict(accumulative_counts=1)
train_cfg = dict(max_epochs=2)
val_cfg = None
val_dataloader = None
val_evaluator = None
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(save_best=None))
'''
PREFLIGHT = 'preflight: global rank 0 checks the train/val data'


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def start(root, config, work, data, nproc: int, port: int, nnodes: int = 1, node_rank: int = 0) -> subprocess.Popen:
    """tools/dist_train.sh CONFIG NPROC as node NODE_RANK of NNODES (rendezvous at 127.0.0.1:PORT)."""
    env = dict(os.environ, PYTHON=sys.executable, PORT=str(port), NNODES=str(nnodes), NODE_RANK=str(node_rank),
               MASTER_ADDR='127.0.0.1', OMP_NUM_THREADS='1')
    cmd = ['bash', str(root / 'tools' / 'dist_train.sh'), str(config), str(nproc), '--work-dir', str(work),
           '--auto-scale-lr', '--cfg-options', f'data_root={data}']
    return subprocess.Popen(cmd, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(*procs) -> list:
    outs = [p.communicate(timeout=300)[0] for p in procs]
    for p, out in zip(procs, outs):
        assert p.returncode == 0, out[-4000:]
    return outs


def test_two_nodes_train_as_one_node_with_two_processes(tmp_path, runs):
    imagenet_folder(tmp_path / 'data', classes=2, train_per_class=4, val_per_class=1, size=32)  # 8 images
    config = tmp_path / 'finetune_two_nodes.py'
    config.write_text(LEAF.format(base=runs.ROOT / 'pretrain/configs/finetune_cnx2_atto.py'))
    port = free_port()
    node0, node1 = (start(runs.ROOT, config, tmp_path / 'nodes', tmp_path / 'data', 1, port, 2, rank)
                    for rank in (0, 1))  # a shared work dir, as on a cluster file system
    out0, out1 = finish(node0, node1)
    one, = finish(start(runs.ROOT, config, tmp_path / 'one', tmp_path / 'data', 2, free_port()))

    assert 'Distributed launcher: pytorch' in out0 and 'GPU number: 2' in out0
    assert (out0.count(PREFLIGHT), out1.count(PREFLIGHT), one.count(PREFLIGHT)) == (1, 0, 1)
    lr = 2e-4 * 4 / 256  # blr × world size 2 × batch 2 × accumulation 1 / 256
    assert 'lr: world size 2 × batch 2 × accumulation 1 = effective 4; lr = blr × 4 / 256' in out0
    with mmengine_checkpoints():
        nodes, single = (torch.load(tmp_path / run / 'epoch_2.pth', map_location='cpu') for run in ('nodes', 'one'))
    assert nodes['meta']['iter'] == single['meta']['iter'] == 4  # 8 images, global batch 4, 2 epochs
    assert nodes['resume_state']['world_size'] == 2
    for ckpt in (nodes, single):
        initial = [g['initial_lr'] for g in ckpt['optimizer']['param_groups']]
        assert abs(max(initial) - lr) < 1e-12, initial
    for key in ('state_dict', 'ema_state_dict', 'optimizer', 'param_schedulers'):
        assert runs.max_difference(nodes[key], single[key]) == 0, key
