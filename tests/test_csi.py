"""The class selectivity index (ConvNeXt V2 appendix C, Fig. 7; Morcos et al. 2018) against a hand computation on a
constructed activation set, and tools/analyze_features.py --measure csi end to end on V1 and V2 checkpoints."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
from PIL import Image

from backbone import ConvNeXtV2
from report.csi import class_means, selectivity_index

ROOT = Path(__file__).resolve().parents[1]


class OneBlock(nn.Module):
    """A 'network' whose one residual block outputs its input: the activation set goes in as the images."""

    def __init__(self):
        super().__init__()
        self.stages = nn.ModuleList([nn.Sequential(nn.Identity())])

    def forward(self, x):
        return self.stages[0](x)


def test_csi_equals_a_hand_computation():
    # 3 classes × 2 images, 4 channels, 1×2 maps; activity = mean over the map after clamping at 0
    maps = torch.tensor([  # (6, C=4, H=1, W=2)
        [[[4., 4]], [[2, 2]], [[0, 0]], [[-1, -3]]],  # class 0
        [[[2., 6]], [[2, 2]], [[-5, -1]], [[-2, -2]]],  # class 0
        [[[1., 1]], [[2, 2]], [[3, 3]], [[-1, -1]]],  # class 1
        [[[0., 2]], [[2, 2]], [[3, 3]], [[-4, -1]]],  # class 1
        [[[1., -1]], [[2, 2]], [[0, 0]], [[-1, -2]]],  # class 2: channel 0's -1 counts as 0
        [[[2., 1]], [[2, 2]], [[0, 0]], [[-3, -1]]],  # class 2
    ])
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    names, means = class_means(OneBlock(), [(maps[:4], labels[:4]), (maps[4:], labels[4:])], num_classes=3)
    # channel 0: class means 4, 1, (0.5 + 1.5)/2 = 1 -> (4 − 1) / (4 + 1) = 0.6
    # channel 1: 2 for every class (class-generic) -> 0; channel 2: 0, 3, 0 (class-specific) -> 3 / (3 + ε) = 1
    # channel 3: never positive (dead) -> 0 / ε = 0
    assert names == ['stages.0.0']
    torch.testing.assert_close(means[0], torch.tensor([[4., 2, 0, 0], [1, 2, 3, 0], [1, 2, 0, 0]],
                                                      dtype=torch.float64))
    torch.testing.assert_close(selectivity_index(means[0]), torch.tensor([0.6, 0., 1., 0.], dtype=torch.float64),
                               atol=1e-7, rtol=0)


def test_csi_rejects_what_it_is_not_defined_on():
    with pytest.raises(ValueError, match='non-negative'):
        selectivity_index(torch.tensor([[1., -0.5], [2, 1]]))
    with pytest.raises(ValueError, match='classes >= 2'):
        selectivity_index(torch.ones(1, 4))


def test_analyze_features_csi_on_v1_and_v2_checkpoints(tmp_path):
    torch.manual_seed(0)
    v1, v2 = ConvNeXtV2('atto', block='v1', num_classes=3), ConvNeXtV2('atto')
    torch.save({'model': v1.state_dict()}, tmp_path / 'v1.pth')
    torch.save({'state_dict': {f'backbone.{k}': v for k, v in v2.state_dict().items()}}, tmp_path / 'v2.pth')
    rng = np.random.default_rng(0)
    for c in ('cat', 'dog', 'owl'):
        folder = tmp_path / 'val' / c / 'nested'
        folder.mkdir(parents=True)
        for i in range(3):  # 3 per class on disk, --max-images 6 takes the first 2 of each
            Image.fromarray(rng.integers(0, 255, (70, 90, 3), dtype=np.uint8)).save(folder / f'{i}.png')
    out = tmp_path / 'out'
    subprocess.run([sys.executable, str(ROOT / 'tools/analyze_features.py'), str(tmp_path / 'v1.pth'),
                    str(tmp_path / 'v2.pth'), '--measure', 'csi', '--images', str(tmp_path / 'val'), '--out', str(out),
                    '--size', '64', '--max-images', '6', '--labels', 'V1', 'V2'], check=True, cwd=tmp_path,
                   capture_output=True, text=True)
    summary = json.loads((out / 'csi.json').read_text())
    assert (summary['images'], summary['classes'], summary['skipped']) == (6, 3, 0)
    for c in summary['checkpoints']:
        assert [r['layer'] for r in c['layers']][:3] == ['stages.0.0', 'stages.0.1', 'stages.1.0']
        assert len(c['layers']) == 12
        for r in c['layers']:
            assert sum(r['histogram']) == len(r['csi']) and all(0 <= v <= 1 for v in r['csi'])
        assert [len(c['layers'][i]['csi']) for i in (0, 2, 4, 11)] == [40, 80, 160, 320]  # one CSI per channel
    assert (out / 'csi.png').stat().st_size > 0
