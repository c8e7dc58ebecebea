"""One launch path from a laptop to a Slurm GPU job: a torchrun or srun task joins the process group with its
device before anything reads its rank. The backend and the device are the only things that depend on the machine
(`backend_and_device`); mmengine's Runner finds the group up and does not initialise it again."""
import datetime
import os
import subprocess

import torch
from mmengine.config import Config

TORCHRUN_VARS = ('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_ADDR', 'MASTER_PORT')


def slurm_env() -> dict:
    """RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT of this srun task, as mmengine's slurm launcher sets
    them (MASTER_* from the environment when given; else the first node of SLURM_NODELIST and port 29500)."""
    missing = [k for k in ('SLURM_PROCID', 'SLURM_NTASKS', 'SLURM_NODELIST') if k not in os.environ]
    if missing:
        raise RuntimeError(f'--launcher slurm: {", ".join(missing)} not set; start the tasks with srun '
                           '(tools/slurm_train.sh)')
    env = dict(RANK=os.environ['SLURM_PROCID'], WORLD_SIZE=os.environ['SLURM_NTASKS'],
               LOCAL_RANK=os.environ.get('SLURM_LOCALID', '0'), MASTER_PORT=os.environ.get('MASTER_PORT', '29500'))
    if 'MASTER_ADDR' not in os.environ:
        nodes = os.environ['SLURM_NODELIST']
        try:
            env['MASTER_ADDR'] = subprocess.run(['scontrol', 'show', 'hostnames', nodes], capture_output=True,
                                                text=True, check=True).stdout.split()[0]
        except (OSError, subprocess.CalledProcessError, IndexError) as e:
            raise RuntimeError(f'--launcher slurm: no master address from `scontrol show hostnames {nodes}` '
                               f'({type(e).__name__}: {e}); set MASTER_ADDR') from None
    return env


def backend_and_device(local_rank: int) -> tuple[str, torch.device]:
    """The one machine-specific choice: NCCL on cuda:LOCAL_RANK where CUDA is available, else gloo on the CPU."""
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
        return 'nccl', torch.device('cuda', local_rank)
    return 'gloo', torch.device('cpu')


def setup_dist(cfg: Config) -> tuple[int, int]:
    """(global rank, world size) of this process. For cfg.launcher 'pytorch' (torchrun's variables) or 'slurm'
    (SLURM_* → the torchrun variables): pick backend and device, join the process group (env:// rendezvous, timeout
    env_cfg.dist_cfg.timeout, default 1800 s: a hung peer is a bounded wait) and set model_wrapper_cfg (DDP device
    ids: [LOCAL_RANK] on a GPU, None on the CPU). 'none': (0, 1), nothing set. Safe to call again."""
    if cfg.launcher == 'none':
        return 0, 1
    if cfg.launcher == 'slurm' and not torch.distributed.is_initialized():
        os.environ.update(slurm_env())
    elif cfg.launcher != 'slurm':
        missing = [k for k in TORCHRUN_VARS if k not in os.environ]
        if cfg.launcher != 'pytorch' or missing:
            raise RuntimeError(f'--launcher {cfg.launcher}: expected pytorch (torchrun sets '
                               f'{", ".join(TORCHRUN_VARS)}; missing here: {", ".join(missing)}) or slurm (srun); '
                               'start with tools/dist_train.sh or tools/slurm_train.sh')
    local_rank = int(os.environ['LOCAL_RANK'])
    backend, device = backend_and_device(local_rank)
    cfg.merge_from_dict({'env_cfg.dist_cfg.backend': backend})  # what the run uses, in the dumped config
    if not torch.distributed.is_initialized():
        timeout = datetime.timedelta(seconds=cfg.env_cfg.dist_cfg.get('timeout', 1800))
        torch.distributed.init_process_group(backend, timeout=timeout)
    wrapper = cfg.get('model_wrapper_cfg') or dict(
        type='MMDistributedDataParallel', broadcast_buffers=False,
        find_unused_parameters=cfg.get('find_unused_parameters', False))
    cfg.model_wrapper_cfg = dict(wrapper, device_ids=[device.index] if device.type == 'cuda' else None)
    return torch.distributed.get_rank(), torch.distributed.get_world_size()

