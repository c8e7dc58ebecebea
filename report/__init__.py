"""The comparison report: our runs' results beside the ConvNeXt V2 paper's ImageNet, COCO (Table 6) and ADE20K
(Table 7) numbers, with params/FLOPs at the paper's input sizes, loss curves, bars and FCMAE reconstructions."""
from .complexity import SIZES, complexity, count_flops
from .markdown import report, write_report
from .paper import PAPER_ADE, PAPER_COCO, PAPER_IN1K, paper_top1
from .results import collect, pretrain_epochs, read_result

__all__ = ['SIZES', 'complexity', 'count_flops', 'report', 'write_report', 'PAPER_ADE', 'PAPER_COCO', 'PAPER_IN1K',
           'paper_top1', 'collect', 'pretrain_epochs', 'read_result', 'stale', 'write_results']


def __getattr__(name):
    """report.write_results / report.stale, imported on first use: `python -m report.stamp` then runs the module
    fresh instead of one the package imported already."""
    if name in ('stale', 'write_results'):
        from . import stamp
        return getattr(stamp, name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
