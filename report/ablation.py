"""The paper's ablation tables rerun on toy data (benchmarks/ablations.py) as markdown and a bar plot: each row's
measured mean ± std over seeds beside the paper's number, its difference from the paper's default row with a verdict
(agrees / disagrees / within resolution), and Kendall's tau between the paper's order and the measured one."""
import math
from pathlib import Path

from matplotlib.figure import Figure


def kendall_tau(a: list, b: list) -> float | None:
    """Kendall's tau-b of two equally long sequences (ties allowed); None when either has no two distinct values."""
    if len(a) != len(b):
        raise ValueError(f'kendall_tau: {len(a)} and {len(b)} values; expected equally many')
    concordant = discordant = ties_a = ties_b = 0
    for i in range(len(a)):
        for j in range(i + 1, len(a)):
            da, db = a[i] - a[j], b[i] - b[j]
            if da == 0 and db == 0:
                continue
            if da == 0:
                ties_a += 1
            elif db == 0:
                ties_b += 1
            elif (da > 0) == (db > 0):
                concordant += 1
            else:
                discordant += 1
    n_a, n_b = concordant + discordant + ties_b, concordant + discordant + ties_a  # pairs untied in a / in b
    if not n_a or not n_b:
        return None
    return (concordant - discordant) / math.sqrt(n_a * n_b)


def order_pairs(paper: list, measured: list) -> tuple[int, int]:
    """Of the pairs of rows the paper orders (different numbers), how many there are and how many the measured
    numbers leave out of that order (the other way round or equal): the paper's ordering holds when none is. Unlike
    tau, a tie in the paper costs nothing: it orders nothing."""
    ordered = reversed_ = 0
    for i in range(len(paper)):
        for j in range(i + 1, len(paper)):
            dp, dm = paper[i] - paper[j], measured[i] - measured[j]
            if dp:
                ordered += 1
                reversed_ += dp * dm <= 0
    return ordered, reversed_


def verdict(delta: float, paper_delta: float | None, resolution: float) -> str:
    """A row against the default row: within resolution when |delta| is at most twice the larger seed spread
    (`resolution`), else whether its sign matches the paper's difference."""
    if abs(delta) <= resolution:
        return 'within resolution'
    if paper_delta is None:
        return 'resolved (paper: no number)'
    if paper_delta == 0:
        return 'paper: equal'
    return 'agrees' if (delta > 0) == (paper_delta > 0) else 'DISAGREES'


def fmt_ms(row: dict) -> str:
    if row.get('mean') is None:
        return row.get('failed', 'failed')
    return f"{row['mean']:.1f} ± {row['std']:.1f}"


def table_markdown(summary: dict) -> str:
    """Rows, the rank agreement and the per-seed values of one table's summary (benchmarks.ablations.summarize)."""
    default = next(r for r in summary['rows'] if r['default'])
    lines = ['| row | paper | measured top-1 | Δ vs default (paper Δ) | verdict | held-out FCMAE loss |',
             '|---|---|---|---|---|---|']
    for r in summary['rows']:
        paper = '–' if r['paper'] is None else f"{r['paper']:g}"
        paper = paper if r['paper_note'] == '' else f"{paper} ({r['paper_note']})"
        if r['default']:
            delta, mark = 'default', ''
        elif r.get('mean') is None or default.get('mean') is None:
            delta, mark = '–', 'failed'
        else:
            pd = '' if r['paper_delta'] is None else f" ({r['paper_delta']:+.1f})"
            delta, mark = f"{r['delta']:+.1f}{pd}", r['verdict']
        loss = '–' if r.get('heldout_loss') is None else f"{r['heldout_loss']:.3f}"
        name = r['name'].replace('|', '\\|')  # a bare | would split the row's cells
        name = f"**{name}**" if r['default'] else name
        lines.append(f"| {name} | {paper} | {fmt_ms(r)} | {delta} | {mark} | {loss} |")
    tau = summary['kendall_tau']
    both = [r for r in summary['rows'] if r['paper'] is not None and r.get('mean') is not None]
    ordered, reversed_ = order_pairs([r['paper'] for r in both], [r['mean'] for r in both])
    holds = ('the paper ordering holds' + ('' if tau == 1 else ": tau is below 1 only through the paper's ties")
             if not reversed_ else f'the paper ordering does not hold for {reversed_} of the {ordered} pairs of '
             'rows it orders')
    agree = ("Kendall's tau: not computable (fewer than two rows with both numbers)" if tau is None else
             f"Kendall's tau between the paper's and the measured order: {tau:+.2f} over {summary['tau_rows']} rows "
             f"({holds})")
    seeds = '\n'.join(f"- {r['name']}: " + ' / '.join(f'{v:.1f}' for v in r['values']) for r in summary['rows']
                      if r.get('values'))
    return '\n'.join(lines) + f"\n\n{agree}; resolution: twice the larger seed spread of a row and the default " \
        f"row. {summary['note']}\n\nPer seed:\n\n{seeds}\n"


def plot_table(summary: dict, path: Path) -> None:
    """A bar per row (mean top-1, error bar ± std, seeds as dots), the paper's number as a marker on a second axis."""
    rows = summary['rows']
    fig = Figure(figsize=(1.1 * len(rows) + 2, 3.2))
    ax = fig.subplots()
    for x, r in enumerate(rows):
        if r.get('mean') is not None:
            ax.bar(x, r['mean'], yerr=r['std'], capsize=4, color='C1' if r['default'] else 'C0')
            ax.plot([x] * len(r['values']), r['values'], 'k.')
    ax.set_xticks(range(len(rows)), [r['name'] for r in rows], fontsize=7)
    ax.set(title=f"{summary['table']} (toy, {len(summary['seeds'])} seeds)", ylabel='toy top-1 %')
    paper = [(x, r['paper']) for x, r in enumerate(rows) if r['paper'] is not None]
    if paper:
        twin = ax.twinx()
        twin.plot(*zip(*paper), 'r_', markersize=18, mew=2)
        twin.set_ylabel('paper top-1 % (red)', color='r')
    fig.tight_layout()
    fig.savefig(path, dpi=90)
