"""The paper's feature-collapse measure (§4, Fig. 4) against hand computation, its hook point in the block, and
tools/analyze_features.py end to end on V1 and V2 checkpoints of two formats."""
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from backbone import ConvNeXtV2
from report.feature_collapse import cosine_distance, layer_distances

ROOT = Path(__file__).resolve().parents[1]


def test_cosine_distance_equals_hand_computation():
    # one image, H=1, W=2, C=3 channel maps X0=(1, 1), X1=(1, 0), X2=(-1, -1)
    x = torch.tensor([[[[1., 1, -1], [1, 0, -1]]]])  # (N=1, H=1, W=2, C=3)
    c01 = 1 / math.sqrt(2)  # cos(X0, X1); cos(X0, X2) = -1; cos(X1, X2) = -1/sqrt(2)
    pairs = (1 - c01) / 2 + (1 + 1) / 2 + (1 + c01) / 2  # i < j; the matrix holds each twice, the diagonal 0
    assert cosine_distance(x).item() == pytest.approx(2 * pairs / 9, rel=1e-12)
    same = torch.ones(2, 4, 4, 8)  # identical channels: fully collapsed
    assert torch.allclose(cosine_distance(same), torch.zeros(2, dtype=torch.float64))


def test_distance_is_measured_on_the_expansion_output(one_thread):
    torch.manual_seed(0)
    model = ConvNeXtV2('atto', out_indices=(3,)).eval()
    for p in model.parameters():
        p.data.normal_(0, 0.2)  # random GRN gamma/beta too: GRN must sit before the hook point
    x = torch.randn(3, 3, 64, 64)
    names, dist, first = layer_distances(model, [x[:2], x[2:]])
    assert names[0] == 'stages.0.0' and len(names) == sum(model.depths) == len(dist)
    block = model.stages[0][0]
    y = block.dwconv(model.downsample_layers[0](x)).permute(0, 2, 3, 1)
    expansion = block.grn(block.act(block.pwconv1(block.norm(y))))  # (N, H, W, 4C)
    assert expansion.shape[-1] == 160
    torch.testing.assert_close(dist[0], cosine_distance(expansion.detach()).mean(), atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(first['stages.0.0'], expansion[0].detach())


def test_analyze_features_tool_on_v1_and_v2_checkpoints(tmp_path):
    v1, v2 = ConvNeXtV2('atto', block='v1', num_classes=4), ConvNeXtV2('atto')
    torch.save({'model': v1.state_dict()}, tmp_path / 'v1_official.pth')  # official layout, V1 with a head
    torch.save({'state_dict': {f'backbone.{k}': v for k, v in v2.state_dict().items()}}, tmp_path / 'v2_det.pth')
    images = tmp_path / 'images' / 'nested'
    images.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (80, 100, 3), dtype=np.uint8)).save(images / f'{i}.png')
    (images / 'broken.jpg').write_bytes(b'not an image')  # named and left out, the rest measured
    out = tmp_path / 'out'
    proc = subprocess.run([sys.executable, str(ROOT / 'tools/analyze_features.py'), str(tmp_path / 'v1_official.pth'),
                           str(tmp_path / 'v2_det.pth'), '--images', str(tmp_path / 'images'), '--out', str(out),
                           '--size', '64', '--labels', 'V1', 'V2'], check=True, cwd=tmp_path, capture_output=True,
                          text=True)
    assert f'skipped unreadable image {images / "broken.jpg"}' in proc.stdout
    summary = json.loads((out / 'feature_collapse.json').read_text())
    assert summary['images'] == 3 and summary['skipped'] == 1
    got = {r['label']: r for r in summary['checkpoints']}
    assert got['V1']['block'] == 'v1' and got['V2']['block'] == 'v2' and got['V1']['format'] == 'official'
    assert all(len(r['distance']) == 12 and 0 < r['mean'] < 1 for r in got.values())
    assert (out / 'feature_collapse.png').stat().st_size > 0 and (out / 'activations.png').stat().st_size > 0


def test_collapsed_activations_give_a_low_distance_and_diverse_ones_a_high_one():
    torch.manual_seed(0)
    z = torch.randn(2, 8, 8, 32)  # (N, H, W, C)
    diverse = torch.nn.functional.gelu(z)
    collapsed = z.clone()
    collapsed[..., 4:] = -4 + 0.01 * z[..., 4:]  # 28 of 32 channels dead: GELU far below 0, nearly constant maps
    collapsed = torch.nn.functional.gelu(collapsed)
    identical = z[..., :1].expand(2, 8, 8, 32)  # every channel the same map
    assert (cosine_distance(diverse) > 0.35).all() and (cosine_distance(z) > 0.45).all()
    assert (cosine_distance(collapsed) < 0.2).all()  # 0.16 here; the diverse GELU maps: 0.39-0.41
    assert torch.allclose(cosine_distance(identical), torch.zeros(2, dtype=torch.float64), atol=1e-12)
    # a channel that is exactly zero (e.g. a GELU output underflowed to 0) counts as orthogonal to every channel,
    # itself included: 28 such channels read as diverse (0.5 per pair), not collapsed; pinned so a change is deliberate
    zeros = z.clone()
    zeros[..., 4:] = 0
    assert (cosine_distance(zeros) > 0.49).all()


@pytest.mark.parametrize('point', ['after_grn', 'mlp_act', 'block_out'])
def test_distance_at_each_hook_point(one_thread, point):
    torch.manual_seed(0)
    model = ConvNeXtV2('atto', out_indices=(3,)).eval()
    for p in model.parameters():
        p.data.normal_(0, 0.2)  # GRN is then far from the identity: before and after it differ
    x = torch.randn(2, 3, 64, 64)
    names, dist, first = layer_distances(model, [x], point)
    block = model.stages[0][0]
    stem = model.downsample_layers[0](x)
    act = block.act(block.pwconv1(block.norm(block.dwconv(stem).permute(0, 2, 3, 1))))
    expected = dict(mlp_act=act, after_grn=block.grn(act), block_out=block(stem).permute(0, 2, 3, 1))[point]
    torch.testing.assert_close(dist[0], cosine_distance(expected.detach()).mean(), atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(first['stages.0.0'], expected[0].detach())
    others = {p: layer_distances(model, [x], p)[1][0] for p in ('after_grn', 'mlp_act', 'block_out') if p != point}
    # the three points are different tensors; GRN scales each channel map by 1 + γ·N(X) (cosine-invariant when
    # positive), so before and after GRN differ only through β and sign flips: a small gap, but not none
    assert all(abs(d - dist[0]) > (1e-3 if 'block_out' in (p, point) else 1e-6) for p, d in others.items())


def test_collapse_training_reads_both_points_and_v1_layerscale(tmp_path, one_thread):
    """benchmarks/collapse_training.py's per-checkpoint reading: V1 (no GRN) and a fresh V2 (GRN γ = β = 0, the
    identity) read the same at both points, a V2 with a non-zero GRN does not, and V1's LayerScale reads its 1e-6
    init (none for V2); the table puts each block's numbers in its own column."""
    from benchmarks.collapse_training import markdown, measure, random_init
    pixels = [torch.randn(3, 64, 64) for _ in range(2)]
    v1, v2 = measure(random_init('v1', tmp_path / 'v1.pth'), pixels), measure(random_init('v2', tmp_path / 'v2.pth'),
                                                                              pixels)
    assert v1['after_grn'] == v1['mlp_act'] and v2['after_grn'] == v2['mlp_act']
    assert v1['layerscale'] == dict(mean=pytest.approx(1e-6), max=pytest.approx(1e-6)) and v2['layerscale'] is None
    model = ConvNeXtV2('atto')
    model.load_state_dict(torch.load(tmp_path / 'v2.pth')['model'])
    torch.manual_seed(1)
    for block in model.stages[2]:
        torch.nn.init.normal_(block.grn.gamma, std=2.0)
    torch.save({'model': model.state_dict()}, tmp_path / 'v2_grn.pth')
    grn = measure(tmp_path / 'v2_grn.pth', pixels)
    assert grn['after_grn']['stage2'] != grn['mlp_act']['stage2']
    assert grn['mlp_act']['layers'][:5] == v2['mlp_act']['layers'][:5]  # up to stage 2's first GRN: untouched
    summary = dict(iterations_per_epoch=10, blocks=dict(v2=[dict(epoch=0, **grn)], v1=[dict(epoch=0, **v1)]))
    table, headline = markdown(summary)
    row = table.splitlines()[-1].split(' | ')
    assert row[1:4] == [f"{grn['after_grn']['stage2']:.3f}", f"{grn['mlp_act']['stage2']:.3f}",
                        f"{v1['after_grn']['stage2']:.3f}"] and row[4].startswith('1e-06')
