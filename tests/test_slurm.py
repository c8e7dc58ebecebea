"""tools/slurm_train.sh and slurm_test.sh on a real one-node Slurm (slurmctld, slurmd and munged started by the
fixture): two tasks on gloo fine-tune atto, global rank 0 alone running the preflight; a task killed mid-job ends the
job (srun --kill-on-bad-exit); the same command plus `--resume` ends bitwise equal to an uninterrupted two-task job;
a 2-task test repeats its validation."""
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
NEEDED = ('mungekey', 'munged', 'slurmctld', 'slurmd', 'srun', 'sinfo', 'scontrol')
SLURM_CONF = '''ClusterName=cnx2test
SlurmctldHost={node}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={dir}/munge.socket
StateSaveLocation={dir}/state
SlurmdSpoolDir={dir}/spool
SlurmctldPidFile={dir}/slurmctld.pid
SlurmdPidFile={dir}/slurmd.pid
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SlurmdParameters=config_overrides
NodeName={node} NodeAddr=127.0.0.1 CPUs=2 State=UNKNOWN
PartitionName=debug Nodes={node} Default=YES MaxTime=INFINITE State=UP
'''
FAULT = '''"""KillAt: at the end of iteration SLURM_TEST_KILL_AT, SIGKILL task 0 (a lost node); the others wait."""
import os, signal, time
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module()
class KillAt(Hook):
    priority = 'LOWEST'

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if runner.rank == 0 and runner.iter + 1 == int(os.environ.get('SLURM_TEST_KILL_AT', 0)):
            print(f'FAULT: SIGKILL task 0 at iteration {runner.iter + 1}', flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
        if runner.rank > 0 and runner.iter + 1 == int(os.environ.get('SLURM_TEST_KILL_AT', 0)):
            time.sleep(60)  # only srun --kill-on-bad-exit ends this task in time
'''
LEAF = '''_base_ = '{base}'
custom_imports = dict(imports=_base_.custom_imports['imports'] + ['slurm_fault'], allow_failed_imports=False)
custom_hooks = _base_.custom_hooks + [dict(type='KillAt')]
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def logs(folder: Path) -> str:
    return '\n'.join(f'--- {p.name}\n' + p.read_text(errors='replace')[-1500:] for p in sorted(folder.glob('*.log')))


def wait_idle(env: dict, procs: list, folder: Path, seconds: float = 30):
    """Wait until the node is idle in partition debug; skip, with the daemons' logs, if it never gets there."""
    deadline, state = time.time() + seconds, ''
    while time.time() < deadline and all(p.poll() is None for p in procs):
        state = subprocess.run(['sinfo', '-h', '-p', 'debug', '-o', '%t'], env=env, capture_output=True,
                               text=True).stdout.strip()
        if state == 'idle':
            return
        time.sleep(0.5)
    pytest.skip(f'the Slurm daemons did not start here (node state {state!r}):\n{logs(folder)}')


@pytest.fixture(scope='module')
def slurm(tmp_path_factory):
    """A one-node cluster of its own (own munge key, socket, ports, state under a tmp dir); yields srun's env."""
    missing = [name for name in NEEDED if shutil.which(name) is None]
    if missing:
        pytest.skip(f'no Slurm here ({", ".join(missing)} not found): apt-get install slurm-wlm munge (.ci/run)')
    if os.geteuid() != 0:
        pytest.skip('slurmd must run as root to start job steps; run as root (CI does)')
    folder = tmp_path_factory.mktemp('slurm')
    folder.chmod(0o700)  # munged refuses a key in a folder others can write (-f: a socket only root can reach)
    for sub in ('state', 'spool'):
        (folder / sub).mkdir()
    node = 'localhost'  # resolves everywhere: MASTER_ADDR is the first host of SLURM_NODELIST
    (folder / 'slurm.conf').write_text(SLURM_CONF.format(node=node, dir=folder, ctld_port=free_port(),
                                                        slurmd_port=free_port()))
    env = dict(os.environ, SLURM_CONF=str(folder / 'slurm.conf'))
    subprocess.run(['mungekey', '-c', '-k', str(folder / 'munge.key')], check=True, capture_output=True)
    commands = [['munged', '-F', '-f', f'--key-file={folder}/munge.key', f'--socket={folder}/munge.socket',
                 f'--pid-file={folder}/munged.pid', f'--seed-file={folder}/munged.seed',
                 f'--log-file={folder}/munged.log'],
                ['slurmctld', '-D', '-c', '-L', f'{folder}/slurmctld.log'],
                ['slurmd', '-D', '-N', node, '-L', f'{folder}/slurmd.log']]
    procs = []
    try:
        for command in commands:
            procs.append(subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                          start_new_session=True))
            deadline = time.time() + 10
            while command[0] == 'munged' and not (folder / 'munge.socket').exists() and time.time() < deadline:
                time.sleep(0.1)
        wait_idle(env, procs, folder)
        yield env
    finally:
        stop(procs, env)


def stop(procs: list, env: dict):
    """scontrol shutdown ends slurmctld and slurmd (after their last job step); munged gets SIGTERM."""
    if procs:
        subprocess.run(['scontrol', 'shutdown'], env=env, capture_output=True, timeout=60)
    for proc in reversed(procs):
        try:
            proc.wait(timeout=1 if proc.args[0] == 'munged' else 20)
        except subprocess.TimeoutExpired:
            proc.terminate()
            proc.wait(timeout=20)


def assert_same(a, b, key='checkpoint'):
    """Bitwise equality of nested checkpoint contents: tensors by torch.equal, everything else by ==."""
    if isinstance(a, dict):
        assert a.keys() == b.keys(), key
        for k in a:
            assert_same(a[k], b[k], f'{key}.{k}')
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), key
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f'{key}.{i}')
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b), key
    else:
        assert a == b, key


LOADER = ['batch_size=2', 'num_workers=0', 'persistent_workers=False', 'dataset.pipeline.size=64']


def srun_job(env: dict, tmp: Path, script: str, job: str, *args, **variables) -> tuple[str, int]:
    """tools/SCRIPT debug JOB CONFIG ARGS with 2 tasks of 1 CPU each and no GRES (no GPUs here); (output, status)."""
    env = dict(env, GPUS='2', GPUS_PER_NODE='2', CPUS_PER_TASK='1', GRES='', PYTHON=sys.executable,
               MASTER_PORT=str(free_port()), OMP_NUM_THREADS='1', PYTHONPATH=str(tmp), **variables)
    options = [f'data_root={tmp}/toy/imagenet', 'model.backbone.num_classes=4', 'train_cfg.max_epochs=2',
               'train_cfg.val_interval=2', 'optim_wrapper.accumulative_counts=1', 'default_hooks.logger.interval=1'
               ] + [f'{loader}_dataloader.{o}' for loader in ('train', 'val', 'test') for o in LOADER]
    cmd = ['bash', str(ROOT / 'tools' / script), 'debug', job, str(tmp / 'finetune_slurm.py'), *args,
           '--cfg-options', *options]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    return proc.stdout + proc.stderr, proc.returncode


def test_slurm_train_killed_then_resumed_matches_uninterrupted(slurm, tmp_path):
    subprocess.run([sys.executable, str(ROOT / 'tools' / 'make_toy_data.py'), str(tmp_path / 'toy'), '--imagenet',
                    '--images', '2', '--size', '64x64'], check=True, capture_output=True)  # 4 classes × 2 (val: × 1)
    (tmp_path / 'slurm_fault.py').write_text(FAULT)
    (tmp_path / 'finetune_slurm.py').write_text(LEAF.format(base=ROOT / 'pretrain/configs/finetune_cnx2_atto.py'))

    log, status = srun_job(slurm, tmp_path, 'slurm_train.sh', 'full', str(tmp_path / 'full'))  # 2 iterations/epoch
    assert status == 0, log[-5000:]
    assert 'Distributed launcher: slurm' in log and 'Distributed training: True' in log and 'GPU number: 2' in log
    # both tasks' output: the preflight ran once, on global rank 0, with the task's one CPU (--cpus-per-task 1)
    assert log.count('preflight: global rank 0 checks') == 1 and '(1 threads)' in log, log[-3000:]
    assert 'lr: world size 2 × batch 2 × accumulation 1 = effective 4; but the recipe is for batch 1024' in log
    val = set(re.findall(r'Epoch\(val\) \[2\]\[1/1\] +accuracy/top1: ([0-9.]+)', log))  # EMA (raw: raw/...)
    assert len(val) == 1, log[-3000:]  # 4 val images, 2 tasks × batch 2

    log, status = srun_job(slurm, tmp_path, 'slurm_train.sh', 'cut', str(tmp_path / 'cut'), SLURM_TEST_KILL_AT='3')
    assert status != 0 and 'FAULT: SIGKILL task 0 at iteration 3' in log, log[-5000:]
    assert 'task 1: Terminated' in log, log[-3000:]  # srun --kill-on-bad-exit ended the task waiting for task 0
    assert (tmp_path / 'cut' / 'epoch_1.pth').exists() and not (tmp_path / 'cut' / 'epoch_2.pth').exists()

    log, status = srun_job(slurm, tmp_path, 'slurm_train.sh', 'cut', str(tmp_path / 'cut'), '--resume')
    assert status == 0, log[-5000:]
    assert 'resumed epoch: 1, iter: 2' in log and 'Epoch(train) [2][2/2]' in log
    a, b = (torch.load(tmp_path / run / 'epoch_2.pth', map_location='cpu', weights_only=False)  # files written here
            for run in ('full', 'cut'))
    assert a['meta']['iter'] == b['meta']['iter'] == 4
    for key in ('state_dict', 'ema_state_dict', 'optimizer', 'param_schedulers'):
        assert_same(a[key], b[key], key)  # bitwise: same kernels, same order, one thread per task

    log, status = srun_job(slurm, tmp_path, 'slurm_test.sh', 'test', str(tmp_path / 'full' / 'epoch_2.pth'),
                           '--work-dir', str(tmp_path / 'test'))
    assert status == 0 and 'GPU number: 2' in log, log[-5000:]
    metrics = json.loads((tmp_path / 'test' / 'test_results.json').read_text())['metrics']
    assert metrics['accuracy/top1'] == float(val.pop())  # the 2-task test repeats the training's validation
