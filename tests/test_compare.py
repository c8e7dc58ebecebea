"""The report (tools/compare.py) on synthetic runs: results JSONs of tools/test.py and tools/seg_eval.py, dumped
configs and a scalars.json give a report with every row, the paper's numbers and valid PNG plots; FLOPs equal hand
counts and the paper's ConvNeXt V2-A figures; ImageNet runs meet the paper column of their pre-training length."""
import json
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from PIL import Image

from report import PAPER_ADE, PAPER_COCO, complexity, count_flops
from tools import compare

ROOT = Path(__file__).resolve().parents[1]
LOSSES = [1.0, 0.9, 0.8125]


def dump(config: str, work: Path, **options) -> None:
    """A config as mmengine's Runner dumps it into its work dir (overrides applied)."""
    cfg = Config.fromfile(str(ROOT / config))
    cfg.merge_from_dict(options)
    work.mkdir(parents=True, exist_ok=True)
    cfg.dump(str(work / Path(config).name))


def write(path: Path, obj) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))
    return path


@pytest.fixture(scope='module')
def runs(tmp_path_factory) -> Path:
    """FCMAE work dir (scalars, no results) → fine-tune (top-1) → Mask R-CNN and UPerNet results, Swin baselines."""
    tmp = tmp_path_factory.mktemp('runs')
    fcmae, ft = tmp / 'fcmae_run', tmp / 'ft_run'
    dump('pretrain/configs/fcmae_cnx2_atto.py', fcmae)
    lines = [dict(loss=v, iter=i + 1, lr=1e-3) for i, v in enumerate(LOSSES)] + [dict(step=3, mIoU=1.0)]
    (fcmae / '20250101_000000' / 'vis_data').mkdir(parents=True)
    (fcmae / '20250101_000000' / 'vis_data' / 'scalars.json').write_text('\n'.join(map(json.dumps, lines)) + '\n')
    Image.new('RGB', (8, 4)).save(fcmae / 'img_fcmae.png')
    dump('pretrain/configs/finetune_cnx2_atto.py', ft, **{'model.backbone.num_classes': 4, 'model.backbone.init_cfg':
                                                          dict(type='Pretrained', checkpoint=str(fcmae / 'e.pth'))})
    write(ft / 'test_results.json', dict(config='pretrain/configs/finetune_cnx2_atto.py', checkpoint=str(ft / 'e.pth'),
                                         task='cls', tta=False, metrics={'accuracy/top1': 61.25, 'accuracy/top5': 1e2}))
    # stock configs (slow to parse: mmdet::/mmseg:: bases), each checkpoint elsewhere: rows named from the config
    for name, box, mask in (('a', 0.123, 0.1), ('b', 0.2, -1.)):  # segm AP -1: mmdet's "no value"
        write(tmp / f'det_{name}' / 'test_results.json', dict(config='det_configs/mask_rcnn_cnx2_a.py', task='det',
              checkpoint=str(tmp / f'{name}.pth'), tta=False, metrics={'coco/bbox_mAP': box, 'coco/segm_mAP': mask}))
    write(tmp / 'upernet_swin' / 'seg_eval.json', dict(config='seg_configs/upernet_swin_b_simmim.py',
          checkpoint=str(tmp / 'swin.pth'), single_scale=dict(mIoU=40.12), multi_scale=dict(mIoU=41.25)))
    write(tmp / 'upernet_tta' / 'test_results.json', dict(config='seg_configs/upernet_swin_b_simmim.py', tta=True,
          checkpoint=str(tmp / 'ms.pth'), task='seg', metrics=dict(mIoU=44.5)))  # tools/test.py --tta: ms only
    write(tmp / 'coco' / 'instances_val2017.json', dict(images=[], annotations=[]))  # not a result: ignored
    return tmp


@pytest.fixture(scope='module')
def report(runs) -> str:
    return compare.main([str(runs), '--out', str(runs / 'out' / 'report.md'), '--no-flops'])


def test_our_rows(report, runs):
    rows = [
        '| ConvNeXt V2-A | FCMAE (ours) | 3.4M | – | 0.8125 | 61.2 | ours: ft_run |',  # 3.39M backbone + 4-class head
        '| ConvNeXt V2-A | FCMAE | 23.4M | – | 12.3 | 10.0 | ours: det_a |',
        '| ConvNeXt V2-A | FCMAE | 23.4M | – | 20.0 | – | ours: det_b |',
        '| Swin-B | SimMIM → IN-1K FT | 121.3M | – | 40.1 | 41.2 | ours: upernet_swin |',  # Swin paper: 121M
        '| Swin-B | SimMIM → IN-1K FT | 121.3M | – | – | 44.5 | ours: upernet_tta |']
    for row in rows:
        assert row in report, row
    assert '| fcmae_run | 3 | 1.0000 | 0.8125 |' in report  # training stages: logged iterations, first and last loss


def test_paper_rows(report):
    for backbone, init, box, mask in PAPER_COCO:
        mask = '–' if mask is None else f'{mask:.1f}'
        assert f'| {backbone} | {init} | – | – | {box:.1f} | {mask} | paper Table 6 |' in report
    for backbone, init, ms in PAPER_ADE:
        assert f'| {backbone} | {init} | – | – | – | {ms:.1f} | paper Table 7 |' in report
    assert '| ConvNeXt V2-A | FCMAE | 3.7M | 0.55G | – | 76.7 |' in report
    assert '| ConvNeXt V2-H | FCMAE | 660M | 115G | – | 86.3 |' in report
    assert report.count('paper Table 6') == 10 + 1 and report.count('paper Table 7') == 10 + 1  # + the headings


def test_plots_are_pngs(report, runs):
    plots = runs / 'out' / 'plots'
    names = ['coco_ap.png', 'ade20k_miou.png', 'loss_curves.png', 'img_fcmae.png']
    for name in names:
        assert (plots / name).read_bytes()[:8] == b'\x89PNG\r\n\x1a\n', name
        with Image.open(plots / name) as im:
            im.verify()
        assert f'](plots/{name})' in report  # linked relative to the report


def test_not_a_result_is_refused(runs):
    with pytest.raises(ValueError, match=r'instances_val2017.json: not a results JSON'):
        compare.main([str(runs / 'coco' / 'instances_val2017.json'), '--out', str(runs / 'bad.md')])


def test_flops_of_a_small_model_by_hand():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 4, 1, 2))
    # one multiply-add per weight per output position: 3·8·3·3 · 16·16 + 8·4 · 8·8
    assert count_flops(model, (16, 16)) == 3 * 8 * 9 * 256 + 8 * 4 * 64


def test_atto_params_and_flops_equal_the_paper(tmp_path):
    cfg = Config.fromfile(str(ROOT / 'pretrain/configs/finetune_cnx2_atto.py'))  # 1000-class head, as in the paper
    cache = {}
    got = complexity(cfg, 'cls', cache)
    assert round(got['params'] / 1e6, 1) == 3.7 and round(got['flops'] / 1e9, 2) == 0.55  # RECIPES variant table
    assert list(cache.values()) == [got]
    cache[next(iter(cache))] = dict(params=1, flops=2)  # a cached value is used as is
    assert complexity(cfg, 'cls', cache) == dict(params=1, flops=2)


def test_imagenet_runs_meet_the_paper_column_of_their_own_pretraining_length(tmp_path):
    """800 FCMAE epochs: paper Table 4 (84.6 for V2-B); 1600: the final 84.9. The length is the epoch of mmengine's
    epoch_N.pth name, else the FCMAE run's dumped max_epochs; a checkpoint from elsewhere has no length."""
    runs = {'ft_a': ('fcmae_a', 1600, 'epoch_1600.pth', 70.0), 'ft_b': ('fcmae_b', 1600, 'epoch_800.pth', 71.0),
            'ft_c': ('fcmae_c', 800, 'model.pth', 72.0), 'ft_d': (None, None, 'convnextv2_base_fcmae.pt', 73.0)}
    for ft, (fcmae, epochs, name, top1) in runs.items():
        if fcmae:
            dump('pretrain/configs/fcmae_cnx2_base.py', tmp_path / fcmae, **{'train_cfg.max_epochs': epochs})
        ckpt = str(tmp_path / (fcmae or 'ckpts') / name)
        dump('pretrain/configs/finetune_cnx2_base.py', tmp_path / ft,
             **{'model.backbone.init_cfg': dict(type='Pretrained', checkpoint=ckpt)})
        write(tmp_path / ft / 'test_results.json', dict(config='pretrain/configs/finetune_cnx2_base.py', task='cls',
              checkpoint=str(tmp_path / ft / 'e.pth'), tta=False, metrics={'accuracy/top1': top1}))
    text = compare.main([str(tmp_path), '--out', str(tmp_path / 'report.md'), '--no-flops'])
    for row in ['| 70.0 | ours: ft_a | 1600 | 84.9 |', '| 71.0 | ours: ft_b | 800 | 84.6 |',
                '| 72.0 | ours: ft_c | 800 | 84.6 |', '| 73.0 | ours: ft_d | – | – |',
                '| FCMAE loss (last) | top-1, 1600-ep FCMAE | top-1, 800-ep FCMAE (Table 4) | source |',
                '| ConvNeXt V2-B | FCMAE | 89M | 15.4G | – | 84.9 | 84.6 |',
                '| Swin-B | SimMIM | – | – | – | – | 84.0 |',
                '| ConvNeXt V2-H | FCMAE | 660M | 115G | – | 86.3 | 85.8 |']:
        assert row in text, row


def test_toy_study_pages_are_published_with_margins_plot_and_stamp(tmp_path):
    """report.toy_study.publish: the transfer page states each margin against its bar (hand-computed here), links the
    plot it draws, and is stamped; the learn page lists every level and the per-class IoU."""
    from report.stamp import read_stamp
    from report.toy_study import STUDY_PATHS, publish
    for p in STUDY_PATHS:  # a checkout without git: the stamp says commit 'unknown'
        (tmp_path / p).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / p).mkdir() if '.' not in p else (tmp_path / p).write_text('')
    cell = lambda mean, std, values: dict(mean=mean, std=std, values=values)  # noqa: E731
    transfer = dict(lengths=dict(finetune=40, det=24, seg=300), seeds=[0, 1, 2], times={},
                    fcmae=dict(loss=0.4, patch_mean_loss=1.0),
                    table=[dict(stage='finetune', metric='top1', random=cell(82., 2., [80, 82, 84]),
                                fcmae=cell(91., 1., [90, 91, 92])),
                           dict(stage='det', metric='bbox_mAP', random=cell(30., 10., [20, 30, 40]),
                                fcmae=cell(35., 5., [30, 35, 40]), fcmae_ft=cell(51., 1., [50, 51, 52]))])
    page = publish('transfer', transfer, 'python benchmarks/bench_transfer.py', root=tmp_path)
    text = page.read_text()
    assert page == tmp_path / 'docs/results/transfer_toy.md' and read_stamp(page)['commit'] == 'unknown'
    assert 'top-1: FCMAE − random init +9.0, bar 4.0: beats random init' in text  # 91 - 82 > 2 x max(2, 1)
    assert 'APbox: FCMAE − random init +5.0, bar 20.0: within the seed spread' in text  # 35 - 30 < 2 x 10
    assert '](../figures/transfer_toy.png)' in text and 'APbox, FCMAE → fine-tuned: 50.0 / 51.0 / 52.0' in text
    assert (tmp_path / 'docs/figures/transfer_toy.png').read_bytes()[:4] == b'\x89PNG'
    assert read_stamp(page)['headline'].startswith('FCMAE − random init: top-1 +9.0*, APbox +5.0 (')
    learn = dict(lengths=dict(fcmae=16, finetune=30, det=24, seg=800), times=dict(fcmae=60.),
                 levels=dict(top1=95., bbox_mAP=50., segm_mAP=45., mIoU=85., class_IoU=70.),
                 fcmae=dict(loss=0.4, patch_mean_loss=1.0), finetune=dict(top1=100.0),
                 det=dict(bbox_mAP=49.9, segm_mAP=55.3), seg=dict(mIoU=89.0, class_IoU=79.5, classes=dict(sky=95.25)),
                 passed=dict(top1=True, bbox_mAP=False, segm_mAP=True, mIoU=True, class_IoU=True, fcmae=True))
    text = publish('learn', learn, 'python benchmarks/learn.py', root=tmp_path).read_text()
    assert '| Mask R-CNN APbox | 49.9 | ≥ 50 | NO |' in text and 'Per-class IoU (single-scale): sky 95.2' in text
    assert 'Run times: fcmae 1.0 min.' in text
    assert read_stamp(tmp_path / 'docs/results/learn_toy.md')['headline'].endswith('5 of 6 levels met')
    index = (tmp_path / 'docs/results/README.md').read_text()
    assert '[Each stage learns (toy data)](learn_toy.md)' in index and 'transfer_toy.md' in index
