"""Draw FCMAE reconstructions (pretrain.visualize): original | masked | reconstruction | visible pasted back.

    python tools/visualize_fcmae.py CONFIG CKPT IMAGES... [--out-dir DIR] [--size S] [--seed N]"""
import argparse
import os.path as osp
import sys

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)  # configs import `backbone`, `pretrain` from the repository root

from mmengine.config import Config, DictAction  # noqa: E402

from pretrain.visualize import visualize  # noqa: E402


def main(argv=None) -> list[str]:
    parser = argparse.ArgumentParser(description='Draw FCMAE reconstructions')
    parser.add_argument('config', help='an FCMAE config (pretrain/configs/fcmae_cnx2_*.py)')
    parser.add_argument('checkpoint', help='an FCMAE training checkpoint (ours or the official one, with decoder)')
    parser.add_argument('images', nargs='+', help='image files')
    parser.add_argument('--out-dir', default='work_dirs/fcmae_vis', help='where the PNG grids go')
    parser.add_argument('--size', type=int, help="square input size, a multiple of 32 (default: the config's)")
    parser.add_argument('--seed', type=int, default=0, help='seed of the random mask')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={}, help='key=value overrides')
    args = parser.parse_args(argv)
    cfg = Config.fromfile(args.config)
    cfg.merge_from_dict(args.cfg_options)
    return visualize(cfg, args.checkpoint, args.images, args.out_dir, args.size, args.seed)


if __name__ == '__main__':
    main()
