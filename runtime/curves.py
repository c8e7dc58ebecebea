"""Where a run's training curves go: mmengine's visualizer backends by short name (tools/train.py --vis-backend).
The base configs log to both `local` (vis_data/scalars.json, read by tools/compare.py) and `tensorboard`."""
VIS_BACKENDS = dict(local='LocalVisBackend', tensorboard='TensorboardVisBackend', wandb='WandbVisBackend')


def vis_backends(names) -> list:
    """visualizer.vis_backends for the short names `names` (each once, in order)."""
    unknown = [n for n in names if n not in VIS_BACKENDS]
    if unknown:
        raise ValueError(f'vis backends {unknown}: expected some of {sorted(VIS_BACKENDS)}')
    return [dict(type=VIS_BACKENDS[n]) for n in dict.fromkeys(names)]
