"""FCMAE versus random init: FCMAE atto on a 2,048-image unlabeled toy pool, then fine-tuning,
Mask R-CNN and UPerNet on small labeled toy sets (4x16 / 64 / 64 images, the held-out sets of benchmarks/learn.py)
from random init, FCMAE and FCMAE -> fine-tuned, at equal downstream budgets, 3 seeds each.

    python benchmarks/bench_transfer.py [--work work_dirs/toy_study] [--workers 2] [--seeds 0 1 2] [--no-publish]

Shares the FCMAE run with benchmarks/learn.py (same work dir); finished runs are skipped on a rerun. Writes
WORK/transfer.json and, stamped, docs/results/transfer_toy.md with its plot docs/figures/transfer_toy.png
(report.toy_study.publish); `python tools/compare.py WORK/transfer.json --out report.md` renders it again."""
import os.path as osp
import sys

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from toyruns.study import main  # noqa: E402

if __name__ == '__main__':
    main('transfer', __doc__)
