"""tools/demo.sh end to end at DEMO_SCALE=tiny (64-px images, 1–2 iterations per stage): every stage runs through
the suite's tools, the report holds every stage's numbers (FCMAE loss, top-1, APbox/APmask, single- and multi-scale
mIoU, the Swin rows), and a second run skips every finished stage."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STAGES = ['data', 'fcmae', 'fcmae_vis', 'finetune', 'finetune_test', 'mask_rcnn_cnx2_a', 'mask_rcnn_cnx2_a_test',
          'mask_rcnn_swin_atto_size', 'mask_rcnn_swin_atto_size_test', 'upernet_cnx2_a', 'upernet_cnx2_a_eval',
          'upernet_swin_atto_size', 'upernet_swin_atto_size_eval']


def demo(work: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, DEMO_SCALE='tiny', PYTHON=sys.executable, OMP_NUM_THREADS='1')
    return subprocess.run(['bash', 'tools/demo.sh', str(work)], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)


@pytest.fixture(scope='module')
def first_run(tmp_path_factory):
    work = tmp_path_factory.mktemp('demo')
    result = demo(work)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return work, result.stdout


def cell(report: str, row_start: str, column: int) -> str:
    """Column `column` of the first table row starting with row_start."""
    line = next(line for line in report.splitlines() if line.startswith(row_start))
    return [c.strip() for c in line.strip('|').split('|')][column]


def test_every_stage_ran_with_a_banner(first_run):
    work, out = first_run
    for stage in STAGES:
        assert re.search(rf'== \[ *\d+s\] {stage} +finished in \d+s', out), stage
    assert 'Epoch(train)' in out and 'Iter(train)' in out  # live progress lines of epoch- and iteration-based loops


def test_report_has_every_stage_number(first_run):
    work = first_run[0]
    report = (work / 'report.md').read_text()
    runs = work / 'runs'
    losses = [json.loads(line)['loss'] for line in
              next((runs / 'fcmae_cnx2_atto').glob('*/vis_data/scalars.json')).read_text().splitlines()]
    top1 = json.loads((runs / 'finetune_cnx2_atto' / 'test_results.json').read_text())['metrics']['accuracy/top1']
    assert len(losses) == 2  # 2 epochs × 1 iteration (8 images, batch 8)
    assert cell(report, '| ConvNeXt V2-A | FCMAE (ours)', 4) == f'{losses[-1]:.4f}'
    assert cell(report, '| ConvNeXt V2-A | FCMAE (ours)', 5) == f'{top1:.1f}'
    for run, init in (('mask_rcnn_cnx2_a', 'FCMAE (ours)'), ('mask_rcnn_swin_atto_size', 'random init')):
        metrics = json.loads((runs / run / 'test_results.json').read_text())['metrics']
        row = next(line for line in report.splitlines() if line.endswith(f'ours: {run} (toy data) |'))
        ap = [f'{100 * v:.1f}' if v >= 0 else '–' for v in (metrics['coco/bbox_mAP'], metrics['coco/segm_mAP'])]
        assert row.split(' | ')[4:6] == ap and f'| {init} |' in row
    for run, init in (('upernet_cnx2_a', 'FCMAE (ours) → IN-1K FT'), ('upernet_swin_atto_size', 'random init')):
        res = json.loads((runs / run / 'seg_eval.json').read_text())
        row = next(line for line in report.splitlines() if line.endswith(f'ours: {run} (toy data) |'))
        assert row.split(' | ')[4:6] == [f"{res[m]['mIoU']:.1f}" for m in ('single_scale', 'multi_scale')]
        assert f'| {init} |' in row
    assert report.count('| Swin (C=40, depths 2-2-6-2) | random init |') == 2  # atto's widths and depths
    for name in ('coco_ap.png', 'ade20k_miou.png', 'loss_curves.png', 'n00000000_circle_00000_fcmae.png'):
        assert (work / 'plots' / name).read_bytes()[:4] == b'\x89PNG'


def test_second_run_skips_finished_stages(first_run):
    work = first_run[0]
    result = demo(work)
    assert result.returncode == 0, result.stderr[-3000:]
    for stage in STAGES:
        assert re.search(rf'{stage} +done before', result.stdout), stage
    assert 'tools/demo.sh finished' in result.stdout
