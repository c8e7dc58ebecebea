"""Publish a checkpoint of any stage as a weights-only file that the stock mm APIs (DetInferencer, MMSegInferencer,
mmengine's load_checkpoint) read with torch's default weights_only=True: state_dict (EMA weights where the run had
EMA) and meta (dataset_meta, config name, epoch, iter), no optimizer, message hub or resume state; named
OUT-<sha256[:8]>.pth as mmdet's publish_model.py. Every training run already writes one (work_dir/published/).

    python tools/publish.py CKPT [OUT]      OUT: a file stem or a folder (default: CKPT without .pth)"""
import argparse
import os.path as osp
import sys

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)  # run as a script: the packages from the repository root

from backbone.checkpoint import CheckpointError  # noqa: E402
from runtime.publish import publish_checkpoint  # noqa: E402


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('checkpoint', help='a checkpoint tools/train.py wrote (any stage)')
    parser.add_argument('out', nargs='?', help='output stem (…-<sha256[:8]>.pth is appended) or an existing folder')
    parser.add_argument('--config', help="the config's file name for meta (default: read from the checkpoint)")
    args = parser.parse_args(argv)
    try:
        path = publish_checkpoint(args.checkpoint, args.out, args.config)
    except CheckpointError as e:
        sys.exit(f'tools/publish.py: {e}')
    print(f'tools/publish.py: wrote {path}')
    return path


if __name__ == '__main__':
    main()
