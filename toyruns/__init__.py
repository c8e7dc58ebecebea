"""Toy-scale runs of the real configs (benchmarks/learn.py, benchmarks/bench_transfer.py, tools/demo.sh): the
overrides that change sizes and lengths only, and a scheduler that runs them on a few cores."""
from .schedule import Job, run_jobs
from .stages import COCO_CLASSES, CONFIGS, Toy, head_options, last_losses, run_stage

__all__ = ['COCO_CLASSES', 'CONFIGS', 'Job', 'Toy', 'head_options', 'last_losses', 'run_jobs', 'run_stage']
