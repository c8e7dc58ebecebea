"""Each stage learns: FCMAE atto on a 2,048-image unlabeled toy pool, fine-tuning on toy ImageNet
(4 classes), then Mask R-CNN and UPerNet from the fine-tuned weights, on 128x128 toy data (make_toy_data.py --profile
learn), each scored on held-out images against the levels a working pipeline reaches (toyruns.study.LEVELS).

    python benchmarks/learn.py [--work work_dirs/toy_study] [--workers 2] [--no-publish]

Finished runs are kept and skipped on a rerun; prints progress, per-stage times and a table; writes WORK/learn.json
and, stamped with machine, date, command and commit, docs/results/learn_toy.md (report.toy_study.publish)."""
import os.path as osp
import sys

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from toyruns.study import main  # noqa: E402

if __name__ == '__main__':
    main('learn', __doc__)
