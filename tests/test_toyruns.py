"""toyruns and the toy-study report: the toy overrides land on the real configs as the paper's values scaled to the
run, the scheduler honours dependencies and stops on a failure, and the FCMAE-vs-random table marks a win only beyond
twice the seed spread."""
import json
import threading
import time

import pytest

from report.toy_study import beats, transfer_table
from runtime.config import load_cfg
from tools.compare import main as compare
from tools.train import parse_args
from toyruns import CONFIGS, Job, Toy, run_jobs, run_stage
from toyruns.stages import ROOT


def cfg_of(toy: Toy, test: bool = False):
    opts = toy.test_options() if test else toy.train_options()
    return load_cfg(str(ROOT / CONFIGS[toy.stage]), parse_args(['x', '--cfg-options', *opts]).cfg_options, None,
                    'none')


def test_det_options_scale_the_lsj_recipe_to_the_run(tmp_path):
    toy = Toy('det', str(tmp_path / 'coco'), 24, size=128, batch=4, images=64)
    cfg = cfg_of(toy)
    pipe = cfg.train_dataloader.dataset.pipeline
    assert pipe[2].scale == (128, 128) and pipe[2].ratio_range == (0.1, 2.0) and pipe[3].crop_size == (128, 128)
    assert cfg.param_scheduler[0].end == 24 * 16 // 10  # warm-up: a tenth of the 384 iterations
    assert cfg.param_scheduler[1].milestones == [18, 22]  # epochs 27 and 33 of 36, scaled to 24
    assert cfg.train_dataloader.dataset.data_root == f'{tmp_path}/coco/' and cfg.val_cfg is None
    assert cfg.model.roi_head.bbox_head.num_classes == 3 and cfg.model.neck.out_channels == 64
    test = cfg_of(toy, test=True)
    assert test.test_dataloader.dataset.pipeline[1].scale == (128, 128)
    assert test.test_evaluator.ann_file == f'{tmp_path}/coco/annotations/instances_val2017.json'


def test_seg_and_finetune_options(tmp_path):
    seg = cfg_of(Toy('seg', str(tmp_path), 300, size=128), test=True)
    assert seg.model.test_cfg.crop_size == (128, 128) and seg.model.test_cfg.stride == (85, 85)  # 512 / 341
    assert [t.scale for t in seg.tta_pipeline[1].transforms[0]] == [(384, 96), (448, 112), (512, 128), (576, 144),
                                                                    (640, 160)]  # 0.75-1.25 x (2048, 512) / 4
    train = cfg_of(Toy('seg', str(tmp_path), 300, size=128))
    assert train.param_scheduler[0].end == 30 == train.param_scheduler[1].begin and train.train_cfg.max_iters == 300
    ft = cfg_of(Toy('finetune', str(tmp_path), 40, size=64, batch=16, images=64))
    assert ft.custom_hooks[0].momentum == pytest.approx(10 / 160)  # EMA horizon: a tenth of 160 steps
    assert ft.model.backbone.num_classes == 4 and ft.train_dataloader.dataset.pipeline.size == 64
    fcmae = cfg_of(Toy('fcmae', str(tmp_path), 20, batch=64))
    assert fcmae.train_dataloader.dataset.split is None and fcmae.param_scheduler[1].begin == 1  # 40 / 800 epochs


def test_run_jobs_follows_dependencies_and_stops_on_failure():
    order, lock = [], threading.Lock()

    def job(name, value, fail=False):
        def fn(results):
            with lock:
                order.append(('start', name, sorted(results)))
            time.sleep(0.05)
            if fail:
                raise RuntimeError(f'{name} broke')
            return value
        return fn
    results, times = run_jobs([Job('a', job('a', 1)), Job('b', job('b', 2), ('a',)), Job('c', job('c', 3))],
                              workers=2, log=lambda line: None)
    assert results == dict(a=1, b=2, c=3) and set(times) == {'a', 'b', 'c'}
    assert ('start', 'b', ['a']) in order or ('start', 'b', ['a', 'c']) in order  # b saw a's result
    order.clear()
    with pytest.raises(RuntimeError, match='a broke'):
        run_jobs([Job('a', job('a', 1, fail=True)), Job('b', job('b', 2), ('a',))], workers=2, log=lambda s: None)
    assert [o[1] for o in order] == ['a']  # b never started
    with pytest.raises(ValueError, match="unknown dependencies \\['z'\\]"):
        run_jobs([Job('a', job('a', 1), ('z',))])


def summary():
    cell = lambda values: dict(mean=sum(values) / len(values), std=(  # noqa: E731
        sum((v - sum(values) / len(values)) ** 2 for v in values) / (len(values) - 1)) ** .5, values=values)
    return dict(seeds=[0, 1, 2], times={'fcmae': 1.0}, fcmae=dict(loss=0.43, patch_mean_loss=1.0), table=[
        dict(stage='finetune', metric='top1', random=cell([80, 82, 84]), fcmae=cell([90, 91, 92])),
        dict(stage='det', metric='bbox_mAP', random=cell([20, 30, 40]), fcmae=cell([30, 35, 40]),
             fcmae_ft=cell([50, 51, 52]))])


def test_transfer_table_marks_wins_beyond_twice_the_seed_spread(tmp_path):
    s = summary()
    assert beats(s['table'][0], 'fcmae')  # 91 - 82 = 9 > 2 x 2
    assert not beats(s['table'][1], 'fcmae')  # 35 - 30 = 5 < 2 x 10
    assert beats(s['table'][1], 'fcmae_ft')  # 51 - 30 = 21 > 2 x 10
    text = transfer_table(s)
    assert '| fine-tuning (4 classes) | top-1 | 82.0 ± 2.0 | 91.0 ± 1.0* | — |' in text
    assert '| Mask R-CNN | APbox | 30.0 ± 10.0 | 35.0 ± 5.0 | 51.0 ± 1.0* |' in text
    (tmp_path / 'transfer.json').write_text(json.dumps(s))
    report = compare([str(tmp_path / 'transfer.json'), '--out', str(tmp_path / 'report.md')])
    assert '## FCMAE vs random init' in report and text in report
    assert (tmp_path / 'plots' / 'transfer.png').read_bytes()[:4] == b'\x89PNG'


def test_a_finished_run_is_kept_only_for_the_same_settings(tmp_path):
    toy = Toy('seg', str(tmp_path), 300)
    done = dict(stage='seg', toy=dict(toy.__dict__, init=None), single_scale=dict(mIoU=80.0))
    (tmp_path / 'run').mkdir()
    (tmp_path / 'run' / 'result.json').write_text(json.dumps(done))
    assert run_stage(toy, tmp_path / 'run') == done  # nothing trains: the kept result comes back
    older = dict(done, toy={k: v for k, v in done['toy'].items() if k != 'config'})  # before Toy had `config`
    (tmp_path / 'run' / 'result.json').write_text(json.dumps(older))
    assert run_stage(toy, tmp_path / 'run') == older  # a field added since counts as its default
    with pytest.raises(ValueError, match=r"other settings \(config: \[None\] there, \['x.py'\] now\)"):
        run_stage(Toy('seg', str(tmp_path), 300, config='x.py'), tmp_path / 'run')
    with pytest.raises(ValueError, match=r"other settings \(length: \[300\] there, \[400\] now\)"):
        run_stage(Toy('seg', str(tmp_path), 400), tmp_path / 'run')
    with pytest.raises(ValueError, match='init'):
        run_stage(toy, tmp_path / 'run', init='fcmae.pth')


def test_bad_settings_are_named(tmp_path):
    from mmengine.config import Config
    from pretrain.evaluate import reconstruction_losses
    from toydata import write_all
    with pytest.raises(ValueError, match="Toy stage 'detection'"):
        Toy('detection', str(tmp_path), 1)
    with pytest.raises(ValueError, match='Toy size 100: expected a multiple of 32'):
        Toy('seg', str(tmp_path), 1, size=100)
    with pytest.raises(ValueError, match=r"datasets \['cifar'\]"):
        write_all(tmp_path, ['cifar'])
    cfg = Config.fromfile(ROOT / CONFIGS['fcmae'])
    with pytest.raises(ValueError, match='size 100 is not a multiple of the FCMAE patch size 32'):
        reconstruction_losses(cfg, 'unused.pth', ['x.jpg'], 100)
    import torch
    from mmengine.registry import MODELS
    import pretrain  # noqa: F401  (registers FCMAE)
    torch.save(dict(state_dict=MODELS.build(cfg.model).state_dict()), tmp_path / 'fcmae.pth')
    (tmp_path / 'broken.jpg').write_bytes(b'not a jpeg')
    with pytest.raises(ValueError, match=f'cannot read image {tmp_path}/broken.jpg'):
        reconstruction_losses(cfg, str(tmp_path / 'fcmae.pth'), [str(tmp_path / 'broken.jpg')], 64)
