"""Evaluate a checkpoint of any stage with mmengine's Runner.test and write the metrics as JSON for the comparison
report (runtime.test). Shaped after mmdet/mmseg tools/test.py (--out, --show-dir, --tta)."""
import argparse
import os.path as osp
import sys

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)  # configs import `backbone`, `pretrain`, `runtime` from the repository root

from mmengine.config import DictAction  # noqa: E402

import runtime  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Test (and evaluate) a checkpoint of any stage')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint to evaluate (loaded as load_from): a path, URL or zoo name')
    parser.add_argument('--work-dir', help='where logs go (default ./work_dirs/<config name>)')
    parser.add_argument('--out', help='also dump the raw predictions to this .pkl')
    parser.add_argument('--show-dir', help='draw predictions into this folder (det: under work_dir/timestamp)')
    parser.add_argument('--tta', action='store_true', help="test-time augmentation (the config's tta_model/pipeline)")
    parser.add_argument('--json-out', help='results JSON (default <work_dir>/test_results.json)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={}, help='key=value overrides')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm'], default='none', help='job launcher')
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    return runtime.test(**vars(parse_args(argv)))


if __name__ == '__main__':
    main()
