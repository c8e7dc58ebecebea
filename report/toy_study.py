"""The toy studies' results (toyruns.study) as markdown and a plot: the learned levels, and FCMAE vs random init as
mean ± std over seeds with a 'beats random by > 2 std' verdict; `publish` writes them into docs/results, stamped."""
from pathlib import Path

from matplotlib.figure import Figure

# the code the studies' numbers depend on: a change here makes docs/results/{learn,transfer}_toy.md stale
STUDY_PATHS = ('backbone', 'pretrain', 'toydata', 'toyruns', 'det_configs', 'seg_configs', 'tools/train.py',
               'tools/test.py', 'tools/seg_eval.py')
FIGURE = 'docs/figures/transfer_toy.png'

INIT_NAMES = dict(random='random init', fcmae='FCMAE', fcmae_ft='FCMAE → fine-tuned')
STAGE_NAMES = dict(finetune='fine-tuning (4 classes)', det='Mask R-CNN', seg='UPerNet')
METRIC_NAMES = dict(top1='top-1', bbox_mAP='APbox', segm_mAP='APmask', mIoU='mIoU', class_IoU='lowest class IoU',
                    mIoU_ms='mIoU (multi-scale)')


def _table(header: list, rows: list) -> str:
    return '\n'.join(['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)] +
                     ['| ' + ' | '.join(map(str, r)) + ' |' for r in rows])


def learn_table(summary: dict) -> str:
    """Each stage's held-out score beside its level and whether it is met."""
    ok, levels = summary['passed'], summary['levels']
    rows = [['FCMAE (held-out masked-patch loss)', f"{summary['fcmae']['loss']:.3f}",
             f"< 0.5 × per-patch mean {summary['fcmae']['patch_mean_loss']:.3f}", 'yes' if ok['fcmae'] else 'NO']]
    for stage, metric in (('finetune', 'top1'), ('det', 'bbox_mAP'), ('det', 'segm_mAP'), ('seg', 'mIoU'),
                          ('seg', 'class_IoU')):
        rows.append([f'{STAGE_NAMES[stage]} {METRIC_NAMES[metric]}', f'{summary[stage][metric]:.1f}',
                     f'≥ {levels[metric]:g}', 'yes' if ok[metric] else 'NO'])
    if 'mIoU_ms' in summary['seg']:
        rows.append([f"{STAGE_NAMES['seg']} {METRIC_NAMES['mIoU_ms']}", f"{summary['seg']['mIoU_ms']:.1f}", '—', ''])
    times = ', '.join(f'{k} {v / 60:.1f} min' for k, v in summary.get('times', {}).items())
    return (_table(['stage (held-out toy data)', 'measured', 'level', 'met'], rows)
            + (f'\n\nRun times: {times}.' if times else ''))


def beats(table_row: dict, init: str) -> bool:
    """`init`'s mean above random init's by more than twice the larger of the two seed spreads."""
    a, b = table_row['random'], table_row[init]
    return b['mean'] - a['mean'] > 2 * max(a['std'], b['std'])


def transfer_table(summary: dict) -> str:
    """mean ± std per stage, metric and init; a * marks a win over random init by more than twice the seed spread."""
    inits = [i for i in INIT_NAMES if any(i in row for row in summary['table'])]
    rows = []
    for row in summary['table']:
        cells = []
        for init in inits:
            if init not in row:
                cells.append('—')
                continue
            mark = '*' if init != 'random' and beats(row, init) else ''
            cells.append(f"{row[init]['mean']:.1f} ± {row[init]['std']:.1f}{mark}")
        rows.append([STAGE_NAMES[row['stage']], METRIC_NAMES.get(row['metric'], row['metric'])] + cells)
    f = summary['fcmae']
    note = (f"\n\n{len(summary['seeds'])} seeds; * beats random init by more than twice the larger seed spread. "
            f"FCMAE held-out masked-patch loss {f['loss']:.3f} vs {f['patch_mean_loss']:.3f} for the per-patch mean.")
    return _table(['task', 'metric'] + [INIT_NAMES[i] for i in inits], rows) + note


def plot_transfer(summary: dict, path: Path) -> None:
    """One panel per task's main metric: a bar per init with the seeds' mean, error bar ± std, the seeds as dots."""
    main = [row for row in summary['table'] if row['metric'] in ('top1', 'bbox_mAP', 'segm_mAP', 'mIoU')]
    fig = Figure(figsize=(3 * len(main), 3))
    for ax, row in zip(fig.subplots(1, len(main), squeeze=False)[0], main):
        inits = [i for i in INIT_NAMES if i in row]
        for x, init in enumerate(inits):
            ax.bar(x, row[init]['mean'], yerr=row[init]['std'], capsize=4, color=f'C{x}')
            ax.plot([x] * len(row[init]['values']), row[init]['values'], 'k.')
        ax.set_xticks(range(len(inits)), [INIT_NAMES[i].replace(' → ', '→\n') for i in inits], fontsize=7)
        ax.set(title=f"{STAGE_NAMES[row['stage']]}: {METRIC_NAMES[row['metric']]}", ylabel='%')
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def learn_markdown(summary: dict) -> tuple[str, str]:
    """The results page of the `learn` study and its one-line headline."""
    n = summary['lengths']
    classes = summary['seg'].get('classes', {})
    per_class = ', '.join(f'{k} {v:.1f}' for k, v in classes.items())
    md = (f"# Each stage learns (toy data)\n\nFCMAE atto, {n['fcmae']} epochs over the unlabeled pool → fine-tuning, "
          f"{n['finetune']} epochs → Mask R-CNN ({n['det']} epochs) and UPerNet ({n['seg']} iterations) from the "
          'fine-tuned weights, on 128×128 toy data (`toydata` profile `learn`); every score on held-out images, '
          'against the levels a working pipeline reaches (`toyruns.study.LEVELS`).\n\n' + learn_table(summary)
          + (f'\n\nPer-class IoU (single-scale): {per_class}.' if per_class else ''))
    ok = summary['passed']
    headline = (f"top-1 {summary['finetune']['top1']:.1f}, APbox {summary['det']['bbox_mAP']:.1f}, APmask "
                f"{summary['det']['segm_mAP']:.1f}, mIoU {summary['seg']['mIoU']:.1f} on held-out toy images; "
                f"{sum(ok.values())} of {len(ok)} levels met")
    return md, headline


def gains(summary: dict) -> list[tuple]:
    """(stage, metric, FCMAE mean − random mean, 2 × the larger seed spread, beats) per row with both inits."""
    return [(r['stage'], r['metric'], r['fcmae']['mean'] - r['random']['mean'],
             2 * max(r['fcmae']['std'], r['random']['std']), beats(r, 'fcmae'))
            for r in summary['table'] if 'fcmae' in r and 'random' in r]


def transfer_markdown(summary: dict, figure: str | None) -> tuple[str, str]:
    """The results page of the `transfer` study (table, plot, per-row margins, seeds) and its headline."""
    lines = [f"- {STAGE_NAMES[s]} {METRIC_NAMES.get(m, m)}: FCMAE − random init {d:+.1f}, bar {bar:.1f}: "
             + ('beats random init' if ok else 'within the seed spread') for s, m, d, bar, ok in gains(summary)]
    seeds = [f"- {STAGE_NAMES[r['stage']]} {METRIC_NAMES.get(r['metric'], r['metric'])}, {INIT_NAMES[i]}: "
             + ' / '.join(f'{v:.1f}' for v in r[i]['values']) for r in summary['table'] for i in INIT_NAMES
             if i in r and r[i].get('values')]
    n = summary['lengths']
    md = (f"# FCMAE versus random init (toy data)\n\nOne FCMAE checkpoint, then per seed fine-tuning "
          f"({n['finetune']} epochs), Mask R-CNN ({n['det']} epochs) and UPerNet ({n['seg']} iterations) on the small "
          'labeled sets, each from random init, from FCMAE and from FCMAE → that seed\'s fine-tuned weights, at '
          'equal '
          'downstream budgets; scores on held-out images.\n\n' + transfer_table(summary)
          + (f'\n\n![FCMAE vs random init, toy data, {len(summary["seeds"])} seeds]({figure})' if figure else '')
          + '\n\nMargins (bar: twice the larger seed spread of the two inits):\n\n' + '\n'.join(lines)
          + ('\n\nPer seed:\n\n' + '\n'.join(seeds) if seeds else ''))
    main = [(m, d, ok) for s, m, d, _, ok in gains(summary) if m in ('top1', 'bbox_mAP', 'segm_mAP', 'mIoU')]
    headline = ('FCMAE − random init: ' + ', '.join(f"{METRIC_NAMES[m]} {d:+.1f}{'*' if ok else ''}"
                                                     for m, d, ok in main)
                + f" (* beyond twice the seed spread, {len(summary['seeds'])} seeds)")
    return md, headline


def publish(study: str, summary: dict, command: str, root: Path | None = None, note: str = '', **stamp) -> Path:
    """Write a study's results page into docs/results (`learn_toy` or `transfer_toy`; the transfer plot into
    docs/figures) through report.stamp; `stamp` passes commit/machine_line/date for figures measured earlier."""
    from .stamp import ROOT, write_results  # here, so that `python -m report.stamp` finds it not yet imported
    root = Path(root or ROOT)
    if study == 'learn':
        md, headline = learn_markdown(summary)
    else:
        figure = None
        if any(r[i].get('values') for r in summary['table'] for i in INIT_NAMES if i in r):
            (Path(root) / FIGURE).parent.mkdir(parents=True, exist_ok=True)
            plot_transfer(summary, Path(root) / FIGURE)
            figure = '../figures/' + Path(FIGURE).name
        elif (Path(root) / FIGURE).is_file():
            figure = '../figures/' + Path(FIGURE).name  # the plot of the run these figures were carried over from
        md, headline = transfer_markdown(summary, figure)
    return write_results(f'{study}_toy', md, command, STUDY_PATHS, root=root, note=note, headline=headline, **stamp)
