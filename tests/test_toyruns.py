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
from toyruns import CONFIGS, Job, Toy, run_jobs, run_stage, swin_options
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
    (tmp_path / 'run' / 'result.json').write_text('{"stage": "seg", "toy"')  # cut short
    with pytest.raises(ValueError, match=r"run/result.json: not a JSON record .*remove it"):
        run_stage(toy, tmp_path / 'run')


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


def test_simmim_stage_is_the_recipe_with_the_atto_sized_swin(tmp_path):
    """The toy SimMIM stage is pretrain/configs/simmim_swin_b.py with the demo's Swin (atto's widths and depths, the
    same as swin_options), the recipe's mask patch 32 and model patch 4, a window tiling the last stage's map (the
    recipe's 6 at 192 px) and the 10 / 700 / 800-epoch schedule scaled to the run."""
    cfg = cfg_of(Toy('simmim', str(tmp_path), 16, size=128, batch=8))
    assert cfg.model.backbone.arch == dict(embed_dims=40, depths=[2, 2, 6, 2], num_heads=[2, 4, 8, 16])
    assert cfg.model.backbone.stage_cfgs.block_cfgs.window_size == 4 and cfg.model.backbone.img_size == 128
    assert cfg.model.neck.in_channels == 320 and cfg.model.head.patch_size == 4
    mask = cfg.train_dataloader.dataset.pipeline[2]
    assert (mask.input_size, mask.mask_patch_size, mask.model_patch_size, mask.mask_ratio) == (128, 32, 4, 0.6)
    assert cfg.train_dataloader.dataset.pipeline[0].scale == 128 and cfg.train_cfg.max_epochs == 16
    assert cfg.train_dataloader.dataset.dataset.data_root == str(tmp_path)
    warm, decay = cfg.param_scheduler
    assert warm.end == decay.begin == 1 and decay.milestones == [13] and decay.end == 16  # epoch 14 = 700 / 800
    assert 'model.backbone.embed_dims=40' in swin_options('det') and 'model.backbone.num_heads=(2,4,8,16)' in \
        swin_options('seg')


@pytest.fixture(scope='module')
def simmim_run(tmp_path_factory):
    """The toy SimMIM stage through tools/train.py: 8 pool images of 64 px, batch 4, 2 epochs (4 iterations)."""
    from toydata import unlabeled
    tmp = tmp_path_factory.mktemp('toy_simmim')
    unlabeled(tmp / 'pool', images=8, size=(64, 64), seed=3)
    return tmp, run_stage(Toy('simmim', str(tmp / 'pool'), 2, size=64, batch=4), tmp / 'simmim')


@pytest.mark.parametrize('stage', ['det', 'seg'])
def test_toy_simmim_checkpoint_is_the_toy_swin_detectors_and_segmentors_backbone(simmim_run, stage):
    """The toy Swin Mask R-CNN / UPerNet, built from the command line run_stage gives tools/train.py with the SimMIM
    checkpoint as --pretrained, holds the SimMIM encoder: every checkpoint tensor is loaded (equal; relative-position
    tables resized from window 2 to 7, the centre kept) or named as dropped (decoder, mask token, final norm, index
    buffers); only the detector's per-stage output norms are new."""
    import torch
    from mmengine.registry import MODELS, init_default_scope
    from runtime import mmengine_checkpoints, set_pretrained
    from toyruns import SWIN_CONFIGS, train_command
    tmp, result = simmim_run
    assert result['stage'] == 'simmim' and result['loss'] > 0
    toy = Toy(stage, str(tmp), 1, size=64, config=SWIN_CONFIGS[stage], extra=swin_options(stage))
    args = parse_args([str(a) for a in train_command(toy, tmp / stage, result['checkpoint'])[1:]])
    assert args.pretrained == result['checkpoint']
    cfg = load_cfg(args.config, args.cfg_options, None, 'none')
    set_pretrained(cfg, args.pretrained)
    init_default_scope(cfg.default_scope)
    model = MODELS.build(cfg.model)
    model.init_weights()
    got = model.backbone.state_dict()
    with mmengine_checkpoints():
        src = torch.load(result['checkpoint'], map_location='cpu')['state_dict']
    report = model.backbone.load_simmim(result['checkpoint'])  # the same loader again, for its report
    assert sorted(report['absent']) == sorted(k for k in got if k.startswith('norm'))  # norm0..3: new
    dropped = {k for k in src if not k.startswith('backbone.')} | {
        k[len('backbone.'):].replace('norm3.', 'norm.') for k in src
        if k.startswith(('backbone.norm3.', 'backbone.mask_token')) or k.endswith('relative_position_index')}
    assert set(report['dropped']) == dropped and any(k.startswith('neck.') for k in dropped)
    loaded = [k for k in got if not k.startswith('norm') and not k.endswith('relative_position_index')]
    assert report['loaded'] == len(loaded) and len(loaded) + len(dropped) == len(src)
    for k in loaded:
        v = src[f'backbone.{k}']
        if k.endswith('relative_position_bias_table'):
            assert v.shape[0] == 3 * 3 and got[k].shape == (13 * 13, v.shape[1])  # window 2 -> 7
            torch.testing.assert_close(got[k][6 * 13 + 6], v[1 * 3 + 1])  # offset (0, 0), the grid centre: kept
        else:
            assert torch.equal(got[k], v), k


def ladder_summary():
    """A ladder summary as benchmarks/ladder.py writes it: 2 seeds, supervised top-1 from the pre-training run."""
    from benchmarks.ladder import ARMS, SCALES
    cell = lambda values: dict(mean=sum(values) / len(values), values=values, std=(  # noqa: E731
        sum((v - sum(values) / len(values)) ** 2 for v in values) / (len(values) - 1)) ** .5)
    table = {arm: dict(bbox_mAP=cell([10. + i, 12. + i]), segm_mAP=cell([8., 8.]), mIoU=cell([40., 50.]))
             for i, arm in enumerate(ARMS)}
    table['v2_sup']['top1'] = dict(mean=70., std=0., values=[70.])
    table['v2_fcmae']['top1'] = cell([80., 84.])
    return dict(scale=SCALES['full'], seeds=[0, 1], images_seen=8192, table=table, times={}, wall_s=600)


def test_ladder_plan_gives_every_arm_the_same_budgets(tmp_path, capsys):
    """The dry plan of benchmarks/ladder.py: each arm pre-trained on the same images seen at the same batch (FCMAE and
    SimMIM on the pool, supervised on the labeled toy ImageNet), and per seed the same Mask R-CNN / UPerNet run from
    that arm's checkpoint (V1 blocks for V1 arms, the atto-sized Swin for SimMIM)."""
    from benchmarks.ladder import SCALES, main, plan, steps
    s = SCALES['full']
    d = {k: tmp_path / k for k in ('unlabeled', 'imagenet', 'coco', 'ade20k')}
    runs = {name: (toy, source) for name, toy, source in plan(s, d, [0, 1, 2])}
    pre = {name.split('/')[1]: toy for name, (toy, _) in runs.items() if name.startswith('pretrain/')}
    assert sorted(pre) == ['swin_simmim', 'v1_fcmae', 'v1_sup', 'v2_fcmae', 'v2_sup']
    seen = {arm: toy.length * (s['pool'] if toy.stage in ('fcmae', 'simmim') else s['imagenet'])
            for arm, toy in pre.items()}
    assert set(seen.values()) == {2048 * 4} and {t.batch for t in pre.values()} == {64}
    assert {steps(t, s['pool']) for t in pre.values()} == {128}  # the same optimizer steps, too
    assert pre['v1_sup'].data == str(d['imagenet']) and pre['swin_simmim'].data == pre['v1_fcmae'].data == str(
        d['unlabeled'])
    assert pre['v1_fcmae'].extra == ['model.block=v1'] and pre['v1_sup'].extra == ['model.backbone.block=v1']
    for task in ('det', 'seg'):
        down = {name.split('/')[1]: (toy, src) for name, (toy, src) in runs.items()
                if name.startswith(f'{task}/') and name.endswith('seed1')}
        assert len(down) == 6 and len({(t.length, t.batch, t.size, t.images, t.seed, t.data) for t, _ in
                                       down.values()}) == 1
        assert {arm: src for arm, (_, src) in down.items()} == {
            arm: None if arm == 'random' else f'pretrain/{arm}' for arm in down}
        assert down['swin_simmim'][0].config and 'model.backbone.embed_dims=40' in down['swin_simmim'][0].extra
        assert down['v1_fcmae'][0].extra == ['model.backbone.block=v1'] == down['v1_sup'][0].extra
    for name in ('pretrain/v1_sup', 'finetune/v1_fcmae/seed0'):  # tested as the V1 model it trained
        assert cfg_of(runs[name][0], test=True).model.backbone.block == 'v1', name
    assert len(runs) == 5 + 3 * (2 + 6 * 2)
    listing = main(['--dry-run', '--work', str(tmp_path)])
    assert listing['runs'] == list(runs) and 'det/swin_simmim/seed2' in capsys.readouterr().out


def test_ladder_table_has_the_papers_tables_6_and_7_in_their_own_columns(tmp_path):
    """Our mean ± std per arm beside the paper's B and L numbers (docs/RECIPES.md, Tables 6 and 7: APbox / APmask,
    multi-scale mIoU); arms the paper does not list get dashes; the plot is a PNG."""
    from benchmarks.ladder import ladder_table, plot
    rows = {line.split(' | ')[0][2:]: line.strip('| ').split(' | ')[1:]
            for line in ladder_table(ladder_summary()).splitlines()[2:]}
    spread = ['8.0 ± 0.0', '45.0 ± 7.1']  # APmask, mIoU
    assert rows == {  # ours: top-1, APbox, APmask, mIoU; the paper: B APbox, APmask, mIoU, L APbox, APmask, mIoU
        'ConvNeXt V1 supervised': ['–', '11.0 ± 1.4', *spread, '50.3', '44.9', '49.9', '50.6', '45.1', '50.5'],
        'ConvNeXt V2 supervised': ['70.0', '12.0 ± 1.4', *spread, '51.0', '45.6', '50.5', '51.5', '45.8', '51.6'],
        'ConvNeXt V1 + FCMAE': ['–', '13.0 ± 1.4', *spread, *['–'] * 6],
        'ConvNeXt V2 + FCMAE': ['82.0 ± 2.8', '14.0 ± 1.4', *spread, '52.9', '46.6', '52.1', '54.4', '47.7', '53.7'],
        'Swin + SimMIM': ['–', '15.0 ± 1.4', *spread, '52.3', '–', '52.8', '53.8', '–', '53.5'],
        'random init (ConvNeXt V2)': ['–', '16.0 ± 1.4', *spread, *['–'] * 6]}
    plot(ladder_summary(), tmp_path / 'ladder.png')
    assert (tmp_path / 'ladder.png').read_bytes()[:4] == b'\x89PNG'


def test_ladder_steps_say_where_the_papers_order_holds():
    """Each step of the ladder against the paper's difference at B (Table 6 APbox: V2 supervised 51.0 → V2 + FCMAE
    52.9, Swin + SimMIM 52.3 → 52.9): a difference beyond twice the larger seed spread agrees or DISAGREES by its
    sign; within it, it says so; steps the paper has no number for say only which way ours went."""
    from benchmarks.ladder import findings
    summary = ladder_summary()
    cell = lambda a, b: dict(mean=(a + b) / 2, values=[a, b], std=abs(a - b) / 2 ** .5)  # noqa: E731
    table = summary['table']
    table['v2_sup']['bbox_mAP'], table['v2_fcmae']['bbox_mAP'] = cell(12., 12.2), cell(20., 20.4)
    table['swin_simmim']['bbox_mAP'] = cell(30., 30.2)
    rows = {tuple(line.split(' | ')[:2]): line.strip('| ').split(' | ')[2:] for line in
            findings(summary).splitlines() if line.startswith('| ') and ' → ' in line}
    assert rows[('| ConvNeXt V2 supervised → ConvNeXt V2 + FCMAE', 'APbox')] == ['+8.1', '0.6', '+1.9', 'agrees']
    assert rows[('| Swin + SimMIM → ConvNeXt V2 + FCMAE', 'APbox')] == ['-9.9', '0.6', '+0.6', 'DISAGREES']
    assert rows[('| ConvNeXt V1 supervised → ConvNeXt V2 supervised', 'APbox')] == [
        '+1.1', '2.8', '+0.7', 'within resolution']  # 11.0 ± 1.4 → 12.1 ± 0.1
    assert rows[('| random init (ConvNeXt V2) → ConvNeXt V2 + FCMAE', 'APbox')] == [
        '+4.2', '2.8', '–', 'higher (no paper number)']
    assert 'Tally: 1 DISAGREES, 1 agrees' in findings(summary)
