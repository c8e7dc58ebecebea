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
    parser.add_argument('--amp', action='store_true',
                        help='mixed precision: float16 AMP on a GPU; float32 on a CPU, with a warning (runtime/amp.py)')
    parser.add_argument('--amp-dtype', choices=['float16', 'bfloat16'],
                        help='AMP in this dtype on any device, CPU autocast included (implies --amp)')
    parser.add_argument('--compile', action='store_true', help="torch.compile the model (mmengine's cfg.compile)")
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='lr follows the effective batch E = world size × batch × accumulation: blr × E / 256 '
                             '(pretrain), lr × E / auto_scale_lr.base_batch_size (det, seg); without it the '
                             "recipe's lr, with a warning when E differs from the recipe's batch")
    parser.add_argument('--pretrained', help='checkpoint for the backbone: path, URL or model-zoo name')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                        help='key=value overrides; data_root=PATH re-points every dataset and evaluator using it')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm'], default='none',
                        help='job launcher: torchrun (tools/dist_train.sh) or srun (tools/slurm_train.sh)')
    parser.add_argument('--no-preflight', dest='preflight', action='store_false',
                        help='skip the data checks (datachecks) before training')
    parser.add_argument('--vis-backend', nargs='+', choices=sorted(runtime.VIS_BACKENDS),
                        help="where the training curves go (default the config's: local tensorboard); local writes "
                             'vis_data/scalars.json, which tools/compare.py reads')
    args = parser.parse_args(argv)
    if args.vis_backend:  # the config's visualizer.vis_backends, as --cfg-options cannot spell a list of dicts
        args.cfg_options['visualizer.vis_backends'] = runtime.vis_backends(args.vis_backend)
    del args.vis_backend
    return args


def main(argv=None):
    return runtime.train(**vars(parse_args(argv)))


if __name__ == '__main__':
    main()
