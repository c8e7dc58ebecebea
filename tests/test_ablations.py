"""benchmarks/ablations.py: every paper table is listed and its rows build real models through the configs; the rank
agreement equals scipy's Kendall tau and a hand count; a table's summary is written as JSON-ready rows, markdown and a
plot through report.stamp."""
import argparse
import json
import re

import pytest
from mmengine.config import Config, DictAction
from mmengine.registry import MODELS
from scipy.stats import kendalltau

import backbone  # noqa: F401  (registers ConvNeXtV2)
import pretrain  # noqa: F401  (registers FCMAE, ImageClassifier)
from benchmarks import ablations
from report.ablation import kendall_tau, order_pairs, table_markdown, verdict

PAPER_TABLES = ('grn_aggregation', 'grn_norm', 'grn_skip', 'grn_vs_norms', 'grn_gating', 'grn_pt_ft', 'grn_components',
                'sparse', 'decoder_type', 'decoder_depth', 'decoder_width', 'mask_ratio', 'codesign')


def test_help_lists_every_table_with_the_paper_numbers(capsys):
    with pytest.raises(SystemExit):
        ablations.main(['--help'])
    out = capsys.readouterr().out
    for table in PAPER_TABLES:
        assert f'  {table}: ' in out
    assert 'BN 80.5' in out and '*GRN 84.6' in out and 'dense (masked regions leak) 79.3' in out
    assert set(PAPER_TABLES) <= set(ablations.TABLES)
    for name, (_, rows) in ablations.TABLES.items():  # one default row: the configs' defaults, shared by all tables
        assert [r.fcmae for r in rows if r.default] == [[]] and [r.finetune for r in rows if r.default] == [[]], name


def merged(config: str, options: list) -> Config:
    """The config as tools/train.py --cfg-options OPTIONS gives it (mmengine's own parser)."""
    ns = argparse.Namespace()
    DictAction(option_strings=[], dest='opts')(None, ns, options)
    cfg = Config.fromfile(config)
    cfg.merge_from_dict(ns.opts)
    return cfg


ROWS = [(t, r) for t in PAPER_TABLES for r in ablations.TABLES[t][1] if not r.default]


@pytest.mark.parametrize('table,row', ROWS, ids=[f'{t}:{r.name}' for t, r in ROWS])
def test_rows_build_models_that_differ_from_the_default(table, row):
    """Each row's options build the FCMAE model and the fine-tuning classifier, and change what they say."""
    cfgs = dict(fcmae='pretrain/configs/fcmae_cnx2_atto.py', finetune='pretrain/configs/finetune_cnx2_atto.py')
    for stage, options in (('fcmae', row.fcmae), ('finetune', row.finetune)):
        if not options:
            continue
        cfg = merged(cfgs[stage], options)
        default = Config.fromfile(cfgs[stage])
        assert cfg.model != default.model, f'{table}/{row.name}: {options} left the {stage} model as it was'
        if 'init_cfg' in str(options):  # the loader's option travels into the Pretrained init_cfg of --pretrained
            assert cfg.model.backbone.init_cfg.grn_mismatch in ('add', 'drop')
            cfg.model.backbone.init_cfg = None
        model = MODELS.build(cfg.model)
        if stage == 'fcmae' and 'mask_ratio' in str(options):
            assert model.mask_ratio == float(options[0].split('=')[1])


def test_kendall_tau_against_scipy_and_a_hand_count():
    # [1,2,3,4] vs [1,3,2,4]: 5 concordant and 1 discordant of 6 pairs -> (5 - 1) / 6
    assert kendall_tau([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(4 / 6)
    # a tie in the first: pairs (0,2), (1,2) concordant, (0,1) tied in a only -> 2 / sqrt(2 * 3)
    assert kendall_tau([1, 1, 2], [1, 2, 3]) == pytest.approx(2 / 6 ** .5)
    a, b = [83.7, 83.2, 80.5, 83.8, 84.6], [61.0, 55.5, 57.2, 61.0, 64.1]
    assert kendall_tau(a, b) == pytest.approx(kendalltau(a, b).statistic)
    assert kendall_tau([1, 2, 3], [3, 2, 1]) == -1 and kendall_tau([1, 1], [2, 3]) is None
    with pytest.raises(ValueError, match='equally many'):
        kendall_tau([1, 2], [1])


def test_the_paper_ordering_is_judged_on_the_pairs_the_paper_orders():
    """A tie in the paper orders nothing: tau below 1 through it alone still holds the paper's ordering; one pair
    the other way round (or equal here) is counted and named."""
    paper = [83.7, 83.5, 83.4, 83.7]  # decoder_type: UNet and the ConvNeXt block tie
    assert order_pairs(paper, [34.8, 32.3, 7.9, 34.5]) == (5, 0)  # 6 pairs, 1 tied in the paper
    assert order_pairs(paper, [34.8, 32.3, 35.0, 34.5]) == (5, 3)  # the third row above all three it is below
    assert order_pairs([1, 2, 3], [5, 5, 6]) == (3, 1)  # equal where the paper orders: not the paper's order

    def text(means):
        rows = [dict(name=str(i), paper=p, paper_note='', default=i == 3, mean=m, std=0.5, values=[m], delta=0.,
                     paper_delta=0., verdict='within resolution') for i, (p, m) in enumerate(zip(paper, means))]
        tau = kendall_tau(paper, means)
        return table_markdown(dict(rows=rows, kendall_tau=round(tau, 3), tau_rows=4, note=''))
    assert "+0.91 over 4 rows (the paper ordering holds: tau is below 1 only through the paper's ties)" in text(
        [34.8, 32.3, 7.9, 34.5])
    assert 'does not hold for 3 of the 5 pairs of rows it orders' in text([34.8, 32.3, 35.0, 34.5])


def test_verdict_marks_differences_below_twice_the_seed_spread():
    assert verdict(-1.0, -0.9, resolution=2.0) == 'within resolution'
    assert verdict(-3.0, -0.9, resolution=2.0) == 'agrees'
    assert verdict(+3.0, -0.9, resolution=2.0) == 'DISAGREES'


def test_a_row_name_with_a_pipe_keeps_the_table_columns():
    rows = [dict(name='|X|/sum|X|', paper=84.6, paper_note='', default=True, mean=37.3, std=1.1, values=[37.3]),
            dict(name='1/sum|X|', paper=83.8, paper_note='', default=False, mean=38.5, std=0.4, delta=1.2,
                 paper_delta=-0.8, verdict='within resolution', values=[38.5])]
    lines = [line for line in table_markdown(dict(rows=rows, kendall_tau=None, tau_rows=0, note='')).splitlines()
             if line.startswith('|')]
    assert len(lines) == 4 and {len(re.split(r'(?<!\\)\|', line)) for line in lines} == {8}  # 6 cells each
    assert all('|' not in r.name for rows in (t[1] for t in ablations.TABLES.values()) for r in rows)


def fake_results(names: dict, seeds) -> dict:
    """Per job, the dict the job functions return: top-1 by row and seed, a held-out loss per FCMAE run."""
    random = f'finetune/random+{ablations.key(ablations.SCRATCH)}'
    top1 = {random: [40., 44., 42.], 'finetune/default+default': [60., 61., 65.]}
    out = {}
    for (table, row, seed), (pt, ft) in names.items():
        out[ft] = dict(top1=top1.get(ft.rsplit('/', 1)[0], [50.] * 3)[seed], train_s=100.)
        if pt:
            out[pt] = dict(loss=0.5, heldout=dict(loss=0.45), train_s=200.)
    return out


def test_summary_markdown_and_plot_are_written_through_the_stamp(tmp_path):
    """toy_task's rows planned (shared runs once), summarised and published into a checkout-like folder."""
    progress = ablations.Progress(0, 2)
    data = dict(unlabeled='pool', imagenet='im', images=192, classes=24, pool=2048, heldout=384)
    jobs, names = ablations.plan(['toy_task', 'codesign'], [0, 1, 2], tmp_path / 'runs', data,
                                 ablations.PROTOCOL, progress)
    assert len(jobs) == progress.total == 3 * (2 + 5)  # FCMAE v2 / v1, fine-tuning: 4 codesign rows, 1 of toy_task
    assert names[('toy_task', 'FCMAE', 1)] == names[('codesign', 'V2 + FCMAE', 1)]
    summary = ablations.summarize('toy_task', [0, 1, 2], names, fake_results(names, [0, 1, 2]), ablations.PROTOCOL,
                                  data)
    rnd, _, fcmae = summary['rows']
    assert (rnd['mean'], fcmae['mean'], fcmae['std']) == (42.0, 62.0, 2.65)
    assert rnd['delta'] == -20.0 and rnd['verdict'] == 'resolved (paper: no number)' and rnd['resolution'] == 5.3
    assert fcmae['heldout_loss'] == 0.45 and rnd['heldout_loss'] is None
    for path in ablations.MEASURED:  # write_results checks that the measured code paths exist in the checkout
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).touch()
    out = ablations.publish(summary, 'python benchmarks/ablations.py toy_task', 60., root=tmp_path)
    text = out.read_text()
    assert out.name == 'ablation_toy_task.md' and '<!-- stamp ' in text
    assert '| random init | – | 42.0 ± 2.0 | -20.0 |' in text and '(../figures/ablation_toy_task.png)' in text
    assert (tmp_path / 'docs/figures/ablation_toy_task.png').stat().st_size > 1000
    (tmp_path / 'toy_task.json').write_text(json.dumps(summary))  # tools/compare.py renders the table's JSON too
    from tools.compare import main
    text = main([str(tmp_path / 'toy_task.json'), '--out', str(tmp_path / 'report.md'), '--no-flops'])
    assert '## Ablation `toy_task`' in text and '| **FCMAE** | – | 62.0 ± 2.6 | default |' in text
    assert (tmp_path / 'plots/toy_task.png').is_file()


def test_protocol_options_reach_the_models_and_the_crop():
    """The study's arch (depths/widths in place of the config's size name), fine-tuning lr and crop area, as
    plan() passes them, build the FCMAE encoder and the classifier at that size and timm's crop at that area."""
    from pretrain.data import build_transform
    cfg = merged('pretrain/configs/fcmae_cnx2_atto.py', ablations.fcmae_toy({'unlabeled': 'pool'}, ablations.PROTOCOL, 0,
                                                                            []).train_options())
    fcmae = MODELS.build(cfg.model)
    assert fcmae.encoder.depths == (1, 1, 3, 1) and fcmae.encoder.dims == (32, 64, 128, 256)
    data = dict(unlabeled='pool', imagenet='im', images=192, classes=24)
    toy = ablations.finetune_toy(data, ablations.PROTOCOL, 0, [])
    cfg = merged('pretrain/configs/finetune_cnx2_atto.py', toy.train_options())
    model = MODELS.build(cfg.model)
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(1.19e6, rel=0.01)
    assert cfg.optim_wrapper.optimizer.lr == ablations.PROTOCOL['finetune_lr']
    crop = build_transform(cfg.train_dataloader.dataset.pipeline).transforms[0]
    assert type(crop).__name__ == 'RandomResizedCropAndInterpolation' and crop.scale == (0.35, 1.0)
    assert crop.size == (ablations.PROTOCOL['size'],) * 2 == (128, 128)


def test_random_init_rows_fine_tune_with_the_scratch_recipe():
    """Rows without pre-training build the classifier with its head at full scale (trunc-normal std 0.02, not 2e-5)
    and one lr for every parameter group (no layer decay); rows from FCMAE keep the fine-tuning recipe's."""
    from mmengine.optim import build_optim_wrapper
    data = dict(unlabeled='pool', imagenet='im', images=192, classes=24)
    rows = {(t, r.name): r for t in ('toy_task', 'codesign') for r in ablations.TABLES[t][1]}
    for (table, name), row in rows.items():
        toy = ablations.finetune_toy(data, ablations.PROTOCOL, 0, ablations.finetune_options(row))
        cfg = merged('pretrain/configs/finetune_cnx2_atto.py', toy.train_options())
        model = MODELS.build(cfg.model)
        model.init_weights()
        head_std = model.backbone.head.weight.std().item()
        lrs = {g['lr'] for g in build_optim_wrapper(model, cfg.optim_wrapper).param_groups}
        scratch = set(ablations.SCRATCH) <= set(ablations.finetune_options(row))
        assert scratch or row.fcmae is not None, f'{name}: random init without the from-scratch recipe'
        if scratch:
            assert head_std == pytest.approx(0.02, rel=0.2) and lrs == {ablations.PROTOCOL['finetune_lr']}, name
        else:
            assert head_std < 1e-4 and len(lrs) > 1 and max(lrs) == ablations.PROTOCOL['finetune_lr'], name
    assert ('v1' in str(ablations.finetune_options(rows[('codesign', 'V1 supervised')]))
            and ablations.finetune_options(rows[('codesign', 'V1 supervised')])[:2] == ablations.SCRATCH)


def test_each_protocol_and_data_set_has_its_own_run_folder(tmp_path):
    """The default protocol keeps the folder its kept runs are in; --labels / --pool give other folders."""
    folder = ablations.protocol_folder(tmp_path, ablations.PROTOCOL)
    assert folder.name == 'arch=-depths-1-1-3-1-dims-32-64-128-256-_crop_scale=0.35_fcm-726b67'
    others = {ablations.protocol_folder(tmp_path, ablations.PROTOCOL, labels=64),
              ablations.protocol_folder(tmp_path, ablations.PROTOCOL, pool=512),
              ablations.protocol_folder(tmp_path, dict(ablations.PROTOCOL, finetune_epochs=50))}
    assert len(others) == 3 and folder not in others
    assert ablations.protocol_folder(tmp_path, ablations.PROTOCOL, labels=32, pool=2048) == folder  # the profile's


def test_fcmae_lr_is_a_protocol_of_its_own_that_reaches_the_run(tmp_path):
    """--fcmae-lr: every FCMAE row trains at that peak lr (the runtime's lr rule keeps an explicit lr, fcmae_cost
    applies it) in a run folder of its own; without it the recipe's 2.4e-3 (blr 1.5e-4 x 4096 / 256) and the default
    folder stay."""
    default, low = ablations.main(['decoder_type', '--cost']), ablations.main(['decoder_type', '--cost', '--fcmae-lr',
                                                                              '6e-4'])
    assert [c['lr'] for c in default.values()] == [pytest.approx(2.4e-3)] * 4
    assert {c['lr'] for c in low.values()} == {6e-4}
    folder = ablations.protocol_folder(tmp_path, dict(ablations.PROTOCOL, fcmae_lr=6e-4))
    assert folder != ablations.protocol_folder(tmp_path, ablations.PROTOCOL) and folder.parent == tmp_path / 'runs'


def test_cost_counts_the_decoder_by_hand(capsys):
    """--cost builds each FCMAE row as its run does and prints FLOPs and parameters. By hand, at 128 px (a 4x4 grid
    for the decoder) and width 512: a ConvNeXt V2 block has 512·49+512 (7x7 depthwise) + 2·512 (LN) + 512·2048+2048
    + 2·2048 (GRN) + 2048·512+512 = 2,130,432 parameters and 2·16·(512·49 + 2·512·2048) = 67,911,680 FLOPs; the
    decoder adds the 256->512 projection (131,584), the mask token (512) and the 512->32·32·3 head (1,575,936)."""
    out = ablations.main(['decoder_depth', '--cost'])
    text = capsys.readouterr().out
    one, two = out[ablations.key([])], out[ablations.key(['model.decoder_depth=2'])]
    block = 512 * 49 + 512 + 2 * 512 + 512 * 2048 + 2048 + 2 * 2048 + 2048 * 512 + 512
    assert one['decoder_params'] == 131_584 + 512 + block + 1_575_936 == 3_838_464
    assert two['decoder_params'] - one['decoder_params'] == block == 2_130_432
    assert two['flops'] - one['flops'] == 2 * 16 * (512 * 49 + 2 * 512 * 2048) == 67_911_680
    assert one['encoder_params'] == two['encoder_params'] == pytest.approx(1.18e6, rel=0.01)
    assert len(out) == 5 and '    174 MFLOPs' in text and 'decoder 27.27M' in text  # depth 12: 3.84M + 11 blocks


def test_a_new_held_out_set_retests_kept_runs_without_training_them_again(tmp_path, monkeypatch):
    """A new held-out count writes the held-out images again and leaves the training images byte for byte (they are
    drawn first); kept runs are then tested (fine-tuning) or scored (FCMAE held-out loss) again on them, not trained
    again, and only once."""
    monkeypatch.setitem(ablations.PROFILES, 'ablation', dict(
        imagenet=dict(scene='combos', classes=2, train_per_class=2, val_per_class=1, size=64),
        unlabeled=dict(scene='combos', images=4, size=(64, 64))))
    proto = dict(ablations.PROTOCOL, size=64, fcmae_epochs=2, finetune_epochs=1, fcmae_batch=2, finetune_batch=2)
    data = ablations.make_data(tmp_path, None, None, 64)
    train = {p.name: p.read_bytes() for p in (data['imagenet'] / 'train').rglob('*.JPEG')}
    assert (data['images'], data['heldout'], data['pool']) == (4, 2, 4)
    pt_work, ft_work = tmp_path / 'fcmae', tmp_path / 'finetune'
    fcmae = ablations.run_fcmae(ablations.fcmae_toy(data, proto, 0, []), pt_work, data)
    toy = ablations.finetune_toy(data, proto, 0, ablations.SCRATCH)
    ablations.run_finetune(toy, ft_work, None, data['heldout_set'])
    assert fcmae['heldout']['images'] == 2

    def tests_run():
        return (ft_work / 'run.log').read_text().count('tools/test.py ')

    trained = {p: p.stat().st_mtime_ns for p in (pt_work / 'epoch_2.pth', ft_work / 'epoch_1.pth')}
    assert tests_run() == 1
    monkeypatch.setitem(ablations.PROFILES['ablation']['imagenet'], 'val_per_class', 3)
    data = ablations.make_data(tmp_path, None, None, 64)
    assert data['heldout'] == 6 and {p.name: p.read_bytes() for p in (data['imagenet'] / 'train').rglob('*.JPEG')} == train
    fcmae = ablations.run_fcmae(ablations.fcmae_toy(data, proto, 0, []), pt_work, data)
    result = ablations.run_finetune(toy, ft_work, None, data['heldout_set'])
    assert fcmae['heldout']['images'] == 6 and result['kept'] and tests_run() == 2
    assert json.loads((ft_work / 'result.json').read_text())['heldout_set']['val_per_class'] == 3
    assert {p: p.stat().st_mtime_ns for p in trained} == trained  # not trained again
    ablations.run_finetune(toy, ft_work, None, data['heldout_set'])
    assert tests_run() == 2


def test_a_corrupt_kept_record_is_an_error_naming_it(tmp_path):
    """A held-out record that is not JSON fails its row with the file named, not with json's bare message."""
    (tmp_path / 'heldout.json').write_text('{"loss": 0.5')
    with pytest.raises(ValueError, match=r'heldout.json: not a JSON record .*remove it to measure that again'):
        ablations.heldout_loss(tmp_path, dict(heldout_set={}), 128)
