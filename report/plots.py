"""The report's PNGs: loss curves per training stage and grouped AP / mIoU bars. matplotlib's Figure is used
without pyplot, so no backend is chosen and no global state changes."""
from pathlib import Path

from matplotlib.figure import Figure


def plot_losses(curves: dict, path: Path) -> None:
    """One panel per training stage: loss against iteration."""
    fig = Figure(figsize=(4 * len(curves), 3))
    axes = fig.subplots(1, len(curves), squeeze=False)
    for ax, (name, (iters, losses)) in zip(axes[0], curves.items()):
        ax.plot(iters, losses, marker='.' if len(iters) < 30 else None)
        ax.set(title=name, xlabel='iteration', ylabel='loss')
    fig.tight_layout()
    fig.savefig(path, dpi=80)


def plot_bars(bars: list, labels: tuple, title: str, path: Path) -> None:
    """Grouped horizontal bars, one group per backbone (ours and the paper's), one bar per metric."""
    fig = Figure(figsize=(8, 0.45 * len(bars) + 1.2))
    ax = fig.subplots()
    for j, label in enumerate(labels):
        ax.barh([i + 0.4 * j for i in range(len(bars))], [b[1 + j] or 0 for b in bars], height=0.4, label=label)
    ax.set_yticks([i + 0.2 for i in range(len(bars))], [b[0] for b in bars], fontsize=7)
    ax.invert_yaxis()
    ax.set(title=title, xlabel='%')
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=80)


def plot_histograms(panels: dict, path: Path, bins: int, value_range: tuple, xlabel: str, title: str) -> None:
    """One panel per key of `panels` ({panel: {series label: values}}), the series' histograms overlaid as steps."""
    cols = min(4, len(panels))
    rows = -(-len(panels) // cols)
    fig = Figure(figsize=(3 * cols, 2.2 * rows + 0.6))
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax, (name, series) in zip(axes.flat, panels.items()):
        for label, values in series.items():
            ax.hist(values, bins=bins, range=value_range, histtype='step', label=label)
        ax.set_title(name, fontsize=8)
        ax.tick_params(labelsize=6)
    for ax in axes.flat[len(panels):]:
        ax.set_axis_off()
    for ax in axes[-1]:
        ax.set_xlabel(xlabel, fontsize=7)
    axes[0][0].legend(fontsize=6)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
