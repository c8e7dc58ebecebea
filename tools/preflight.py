"""Check the annotations a config trains and validates on (datachecks), before any runner exists.

    python tools/preflight.py CONFIG [--work-dir W] [--cfg-options k=v ...]   # summary JSON; exit 1 on errors"""
import argparse
import json
import os.path as osp
import sys

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)  # run as a script: the packages from the repository root

from mmengine.config import DictAction  # noqa: E402

from datachecks import DataError, check  # noqa: E402
from runtime import load_cfg  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description='Check the annotations a config trains and validates on')
    parser.add_argument('config')
    parser.add_argument('--work-dir', help='where the preflight cache goes (default as tools/train.py)')
    parser.add_argument('--no-cache', action='store_true',
                        help='check every label map and COCO json again (WORK_DIR/preflight_cache.json unused)')
    parser.add_argument('--splits', nargs='+', default=['train', 'val', 'test'], choices=['train', 'val', 'test'],
                        help='whose dataloaders to check (tools/train.py checks train and val)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={})
    args = parser.parse_args(argv)
    cfg = load_cfg(args.config, args.cfg_options, args.work_dir, 'none')
    try:
        result = check(cfg, use_cache=not args.no_cache, splits=args.splits)
    except DataError as e:
        print(e, file=sys.stderr)
        return 1
    print(json.dumps(result, indent=1))
    return 0


if __name__ == '__main__':
    sys.exit(main())
