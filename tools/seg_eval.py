"""ADE20K evaluation in one go (paper A.4): the single-scale sliding-window test and the multi-scale test, written to
one JSON with mIoU / mAcc / aAcc and the per-class IoU of each (runtime.seg_eval).

    python tools/seg_eval.py CONFIG CKPT [--work-dir D] [--flip] [--single-scale] [--show-dir D] [--json-out F]
                             [--cfg-options ...]

On several GPUs: torchrun --nproc_per_node GPUS tools/seg_eval.py ... --launcher pytorch (PYTHONPATH=repo root), or
the multi-scale test alone through tools/test.py: tools/dist_test.sh CONFIG CKPT GPUS --tta.
"""
import argparse
import os.path as osp
import sys

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)  # configs import `backbone`, `runtime` from the repository root

from mmengine.config import DictAction  # noqa: E402

from runtime.seg_eval import seg_eval  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='ADE20K single- and multi-scale evaluation of a segmentation checkpoint')
    p.add_argument('config')
    p.add_argument('checkpoint')
    p.add_argument('--work-dir', help='logs go to WORK_DIR/{single,multi}_scale (default work_dirs/CONFIG_NAME)')
    p.add_argument('--flip', action='store_true', help='add horizontal flips to the multi-scale test')
    p.add_argument('--single-scale', action='store_true', help='the single-scale pass only')
    p.add_argument('--show-dir', help='save painted predictions to SHOW_DIR/{single,multi}_scale')
    p.add_argument('--json-out', help='results JSON (default WORK_DIR/seg_eval.json)')
    p.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                   help='key=value overrides; data_root=PATH re-points the datasets (tools/train.py)')
    p.add_argument('--launcher', choices=['none', 'pytorch', 'slurm'], default='none', help='job launcher')
    return p.parse_args(argv)


def main(argv=None) -> dict:
    return seg_eval(**vars(parse_args(argv)))


if __name__ == '__main__':
    main()
