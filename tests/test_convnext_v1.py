"""The ConvNeXt V1 block option (`block='v1'`) against timm's ConvNeXt V1 models, through the dense backbone, the
masked encoder and FCMAE; V1 weights into a V2 model (and the reverse) stay a named error."""
import pytest
import timm
import torch

from backbone import ConvNeXtV2
from backbone.checkpoint import CheckpointError, load_pretrained
from backbone.convnextv2 import V1_VARIANTS
from backbone.masked import MaskedConvNeXtV2
from pretrain.fcmae import FCMAE


@pytest.mark.parametrize('arch', list(V1_VARIANTS))
def test_v1_sizes_have_timm_parameter_counts(arch):
    with torch.device('meta'):
        ours = ConvNeXtV2(arch, block='v1', num_classes=1000)
        theirs = timm.create_model(f'convnext_{arch}', num_classes=1000)
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in theirs.parameters())


@pytest.mark.parametrize('arch', ['atto', 'tiny'])  # atto: timm's 1x1-conv MLP layout; tiny: a V1 paper size
def test_v1_outputs_equal_timm_with_the_same_weights(arch, one_thread):
    theirs = timm.create_model(f'convnext_{arch}', num_classes=10).eval()
    with torch.no_grad():
        for p in theirs.parameters():
            p.normal_(0, 0.05)  # LayerScale gamma too: at 1e-6 the blocks would hardly matter
    ours = ConvNeXtV2(arch, block='v1', num_classes=10).eval()
    load_pretrained(ours, theirs.state_dict())
    x = torch.randn(2, 3, 64, 64)
    expected = theirs(x)
    assert (expected[0] - expected[1]).abs().max() > 1e-3  # the input matters, not only the biases
    torch.testing.assert_close(ours(x), expected, atol=1e-5, rtol=1e-5)


def test_v1_layer_scale_init_and_official_names():
    block = ConvNeXtV2('atto', block='v1').stages[0][0]
    assert torch.equal(block.gamma, torch.full((40,), 1e-6))
    keys = ConvNeXtV2('atto', block='v1', num_classes=5).state_dict()
    assert 'stages.0.0.gamma' in keys and not any('grn' in k for k in keys)


def test_official_v1_checkpoint_loads_strictly_and_not_into_v2(tmp_path):
    v1 = ConvNeXtV2('tiny', block='v1', num_classes=1000)
    path = tmp_path / 'convnext_tiny_1k_224_ema.pth'
    torch.save({'model': v1.state_dict()}, path)  # the official V1 release layout
    report = load_pretrained(ConvNeXtV2('tiny', block='v1', num_classes=1000), path)
    assert report['loaded'] == len(v1.state_dict()) and not report['absent']
    with pytest.raises(CheckpointError, match=r"ConvNeXt V1 \(LayerScale gamma, no GRN\) checkpoint does not fit a "
                                              r"ConvNeXt V2 .* block='v1'"):
        load_pretrained(ConvNeXtV2('tiny', num_classes=1000), path)
    with pytest.raises(CheckpointError, match=r"ConvNeXt V2 \(GRN, no LayerScale\) checkpoint .* block='v2'"):
        load_pretrained(ConvNeXtV2('tiny', block='v1'), ConvNeXtV2('tiny').state_dict())


def test_masked_v1_encoder_equals_the_dense_v1_model(one_thread):
    torch.manual_seed(0)
    enc = MaskedConvNeXtV2('atto', block='v1').double().eval()
    with torch.no_grad():
        for block in (b for stage in enc.stages for b in stage):
            block.gamma.normal_()  # LayerScale must act on the masked paths as in the dense block
    dense = ConvNeXtV2('atto', block='v1', out_indices=(3,)).double().eval()
    dense.load_state_dict(enc.state_dict(), strict=False)
    x = torch.randn(2, 3, 64, 96, dtype=torch.float64)
    full = dense.stages[3](dense.downsample_layers[3](dense.stages[2](dense.downsample_layers[2](
        dense.stages[1](dense.downsample_layers[1](dense.stages[0](dense.downsample_layers[0](x)))))))).detach()
    for path in ('visible', 'dense'):
        enc.path = path
        torch.testing.assert_close(enc(x, torch.zeros(2, 6, dtype=torch.float64)), full, atol=1e-10, rtol=1e-10)
    mask = torch.tensor([[1., 0, 1, 0, 1, 0], [0, 0, 1, 1, 1, 0]], dtype=torch.float64)
    enc.path = 'visible'
    visible = enc(x, mask)
    enc.path = 'dense'
    torch.testing.assert_close(visible, enc(x, mask), atol=1e-10, rtol=1e-10)


def test_fcmae_trains_a_v1_encoder(one_thread):
    torch.manual_seed(0)
    model = FCMAE('atto', block='v1', decoder_embed_dim=64)
    assert all(b.gamma is not None for b in model.decoder)
    loss = model(torch.rand(2, 3, 64, 64) * 255, mode='loss')['loss']
    loss.backward()
    grads = [b.gamma.grad for stage in model.encoder.stages for b in stage]
    assert torch.isfinite(loss) and all(g is not None and g.abs().sum() > 0 for g in grads)
