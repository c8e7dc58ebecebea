"""tools/demo.sh end to end at DEMO_SCALE=tiny (64-px images, 1–2 iterations per stage): every stage runs through
the suite's tools, the report holds every stage's numbers (FCMAE loss, top-1, APbox/APmask, single- and multi-scale
mIoU, the Swin rows from SimMIM), every run publishes its weights, a second run skips every finished stage, and the
demo's runs are the toy studies' stage definitions (one place to change a toy override)."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
STAGES = ['data', 'fcmae', 'simmim', 'fcmae_vis', 'finetune', 'finetune_test', 'mask_rcnn_cnx2_a',
          'mask_rcnn_cnx2_a_test', 'mask_rcnn_swin_atto_size', 'mask_rcnn_swin_atto_size_test', 'upernet_cnx2_a',
          'upernet_cnx2_a_eval', 'upernet_swin_atto_size', 'upernet_swin_atto_size_eval']


def demo(work: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, DEMO_SCALE='tiny', PYTHON=sys.executable, OMP_NUM_THREADS='1')
    return subprocess.run(['bash', 'tools/demo.sh', str(work)], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=900)  # under load: ~450 s on 2 shared cores


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
    for run, init in (('mask_rcnn_cnx2_a', 'FCMAE (ours)'), ('mask_rcnn_swin_atto_size', 'SimMIM (ours)')):
        metrics = json.loads((runs / run / 'test_results.json').read_text())['metrics']
        row = next(line for line in report.splitlines() if line.endswith(f'ours: {run} (toy data) |'))
        ap = [f'{100 * v:.1f}' if v >= 0 else '–' for v in (metrics['coco/bbox_mAP'], metrics['coco/segm_mAP'])]
        assert row.split(' | ')[4:6] == ap and f'| {init} |' in row
    for run, init in (('upernet_cnx2_a', 'FCMAE (ours) → IN-1K FT'), ('upernet_swin_atto_size', 'SimMIM (ours)')):
        res = json.loads((runs / run / 'seg_eval.json').read_text())
        row = next(line for line in report.splitlines() if line.endswith(f'ours: {run} (toy data) |'))
        assert row.split(' | ')[4:6] == [f"{res[m]['mIoU']:.1f}" for m in ('single_scale', 'multi_scale')]
        assert f'| {init} |' in row
    assert report.count('| Swin (C=40, depths 2-2-6-2) | SimMIM (ours) |') == 2  # atto's widths and depths
    for name in ('coco_ap.png', 'ade20k_miou.png', 'loss_curves.png', 'n00000000_circle_00000_fcmae.png'):
        assert (work / 'plots' / name).read_bytes()[:4] == b'\x89PNG'


def test_every_run_published_and_tiny_results_stay_in_the_work_dir(first_run):
    work, out = first_run
    for run in ('fcmae_cnx2_atto', 'simmim_swin_atto_size', 'finetune_cnx2_atto', 'mask_rcnn_cnx2_a',
                'mask_rcnn_swin_atto_size', 'upernet_cnx2_a', 'upernet_swin_atto_size'):
        [published] = (work / 'runs' / run / 'published').glob('*.pth')
        assert str(published) in out and set(torch.load(published)) == {'state_dict', 'meta'}, run
    table = (work / 'results.md').read_text()
    assert '| upernet_cnx2_a | mIoU ' in table and table in out  # written beside the runs; docs/results only at default


def test_second_run_skips_finished_stages(first_run):
    work = first_run[0]
    result = demo(work)
    assert result.returncode == 0, result.stderr[-3000:]
    for stage in STAGES:
        assert re.search(rf'{stage} +done before', result.stdout), stage
    assert 'tools/demo.sh finished' in result.stdout


def test_a_toy_override_reaches_the_demo_and_the_studies(tmp_path, monkeypatch):
    """The demo and the studies build their runs from toyruns.stages: one value changed there reaches both."""
    from runtime import load_cfg
    from tools.train import parse_args
    from toyruns import demo, stages, study
    monkeypatch.setitem(stages.SEG_HEADS, 'decode_head.channels', 96)
    monkeypatch.setitem(stages.DET_HEADS, 'roi_head.bbox_head.fc_out_channels', 80)
    demo_runs = demo.toys(demo.settings(dict(DEMO_SCALE='tiny')), tmp_path)
    data = {k: tmp_path / k for k in ('imagenet', 'coco', 'ade20k', 'unlabeled')}
    study_runs = study.toys(data, study.LEARN)
    commands = [stages.train_command(demo_runs['upernet_cnx2_a'], tmp_path / 'a', 'ft.pth'),
                stages.train_command(study_runs['seg'], tmp_path / 'b', 'ft.pth'),
                stages.test_command(demo_runs['upernet_swin_atto_size'], tmp_path / 'c')[0]]
    assert all('model.decode_head.channels=96' in cmd for cmd in commands)
    for cmd in commands[:2]:
        args = parse_args([str(a) for a in cmd[1:]])
        assert load_cfg(args.config, args.cfg_options, None, 'none').model.decode_head.channels == 96
    for toy in (demo_runs['mask_rcnn_cnx2_a'], demo_runs['mask_rcnn_swin_atto_size'], study_runs['det']):
        assert 'model.roi_head.bbox_head.fc_out_channels=80' in stages.train_command(toy, tmp_path)


def test_swin_baseline_is_simmim_pretrained_on_fcmaes_images(tmp_path, monkeypatch):
    """Like with like: SimMIM reads FCMAE's pool at FCMAE's image size, batch and epochs (the same optimizer steps and
    images seen), and both Swin runs start from SimMIM's final checkpoint, as the ConvNeXt runs from FCMAE's."""
    from toyruns import demo, stages
    from tools.train import parse_args
    for scale in ('default', 'tiny'):
        s = demo.settings(dict(DEMO_SCALE=scale))
        t = demo.toys(s, tmp_path)
        fcmae, simmim = t['fcmae_cnx2_atto'], t['simmim_swin_atto_size']
        assert simmim.stage == 'simmim' and simmim.data == fcmae.data == str(tmp_path / 'unlabeled')
        assert (simmim.length, simmim.batch, simmim.size) == (fcmae.length, fcmae.batch, fcmae.size) == (
            s['fcmae_epochs'], s['cls_batch'], s['cls_size'])
        a, b = (parse_args([str(x) for x in stages.train_command(toy, tmp_path)[1:]]).cfg_options
                for toy in (fcmae, simmim))
        assert (a['train_dataloader.batch_size'], a['train_cfg.max_epochs'], a['data_root']) == (
            b['train_dataloader.batch_size'], b['train_cfg.max_epochs'], b['data_root'])
        assert a['train_dataloader.dataset.split'] is None is b['train_dataloader.dataset.dataset.split']  # all images
    jobs = {j.name: j for j in demo.jobs(demo.settings(dict(DEMO_SCALE='tiny')), tmp_path, demo.Progress(tmp_path))}
    assert jobs['mask_rcnn_swin_atto_size'].after == jobs['upernet_swin_atto_size'].after == ('simmim',)
    calls = []
    monkeypatch.setattr(demo, 'run_stage', lambda toy, work, init, *args: calls.append((toy.stage, init)))
    for job in ('mask_rcnn_swin_atto_size', 'upernet_swin_atto_size'):
        jobs[job].fn(dict(simmim=dict(checkpoint='simmim/epoch_2.pth')))
    assert calls == [('det', 'simmim/epoch_2.pth'), ('seg', 'simmim/epoch_2.pth')]


def test_demo_settings_name_bad_knobs():
    from toyruns.demo import settings
    assert settings(dict(DEMO_SCALE='tiny', DEMO_SEG_ITERS='3'))['seg_iters'] == 3
    with pytest.raises(ValueError, match='DEMO_SCALE=huge: expected one of default, tiny'):
        settings(dict(DEMO_SCALE='huge'))
    with pytest.raises(ValueError, match='DEMO_SIZE=12x12: expected a positive integer'):
        settings(dict(DEMO_SIZE='12x12'))
    with pytest.raises(ValueError, match='DEMO_DET_INIT=imagenet: expected fcmae or finetune'):
        settings(dict(DEMO_DET_INIT='imagenet'))
