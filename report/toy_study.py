"""The toy studies' results (toyruns.study) as markdown and a plot: the learned levels, and FCMAE vs random init as
mean ± std over seeds with a 'beats random by > 2 std' verdict (issue 12)."""
from pathlib import Path

from matplotlib.figure import Figure

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
    times = ', '.join(f'{k} {v / 60:.1f} min' for k, v in summary['times'].items())
    return _table(['stage (held-out toy data)', 'measured', 'level', 'met'], rows) + f'\n\nRun times: {times}.'


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
