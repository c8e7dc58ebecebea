"""Train any stage of the suite (FCMAE pre-training, ImageNet fine-tuning, COCO detection, ADE20K segmentation) with
mmengine's Runner (runtime.train). Shaped after mmdet/mmseg tools/train.py; one script for all."""
import argparse
import os.path as osp
import sys

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)  # configs import `backbone`, `pretrain`, `runtime` from the repository root

from mmengine.config import DictAction  # noqa: E402

import runtime  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a model of any stage (pretrain, finetune, det, seg)')
    parser.add_argument('config', help='config file')
    parser.add_argument('--work-dir', help='where logs and checkpoints go (default ./work_dirs/<config name>)')
    parser.add_argument('--resume', nargs='?', const='auto',
                        help='resume from PATH, or without PATH from the last complete checkpoint in the work dir')
    parser.add_argument('--amp', action='store_true', help='mixed precision (AmpOptimWrapper; fp32 without CUDA)')
    parser.add_argument('--amp-dtype', choices=['float16', 'bfloat16'],
                        help='AMP with this dtype (implies --amp; fp32 without CUDA)')
    parser.add_argument('--compile', action='store_true', help="torch.compile the model (mmengine's cfg.compile)")
    parser.add_argument('--auto-scale-lr', action='store_true', help='lr × batch / base_batch_size')
    parser.add_argument('--pretrained', help='checkpoint for the backbone: path, URL or model-zoo name')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                        help='key=value overrides; data_root=PATH re-points every dataset and evaluator using it')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm'], default='none',
                        help='job launcher: torchrun (tools/dist_train.sh) or srun (tools/slurm_train.sh)')
    parser.add_argument('--no-preflight', dest='preflight', action='store_false',
                        help='skip the data checks (datachecks) before training')
    return parser.parse_args(argv)


def main(argv=None):
    return runtime.train(**vars(parse_args(argv)))


if __name__ == '__main__':
    main()
