"""Toy-scale runs of the real configs (benchmarks/learn.py, benchmarks/bench_transfer.py, the demo toyruns.demo behind
tools/demo.sh): the overrides that change sizes and lengths only, defined once in stages.py, and a scheduler that runs
them on a few cores."""
from .schedule import Job, run_jobs
from .stages import (COCO_CLASSES, CONFIGS, SWIN_CONFIGS, Toy, head_options, last_losses, run_stage, swin_options,
                     test_command, train_command)

__all__ = ['COCO_CLASSES', 'CONFIGS', 'Job', 'SWIN_CONFIGS', 'Toy', 'head_options', 'last_losses', 'run_jobs',
           'run_stage', 'swin_options', 'test_command', 'train_command']
