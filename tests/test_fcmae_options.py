"""The FCMAE ablations of ConvNeXt V2 Table 1 as config options: the dense encoder without sparse conv (masked regions
leak into visible outputs; the sparse encoder's do not), the decoder types (ConvNeXt, UNet with / without skips,
transformer) with their depth and width, and mask_ratio validation."""
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.registry import MODELS

import pretrain  # noqa: F401  (registers FCMAE)
from backbone import ConvNeXtV2
from pretrain.fcmae import FCMAE

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / 'pretrain/configs/fcmae_cnx2_atto.py'
MASK = torch.tensor([[0., 1, 1, 0]])  # 64×64 input: patches (0, 0) and (1, 1) visible


def build(**overrides) -> FCMAE:
    cfg = Config.fromfile(str(CONFIG))
    cfg.model.update(decoder_embed_dim=64, **overrides)
    return MODELS.build(cfg.model)


def perturb_masked_site(model: FCMAE):
    """A forward hook that adds 1 to channel 0 of the first block's depthwise-conv output at stage-0 site (0, 8):
    inside the masked patch (0, 1), one site right of the visible patch (0, 0), within the next 7×7 conv's reach."""
    def hook(_module, _inputs, out):
        out = out.clone()
        out[:, 0, 0, 8] += 1.  # one channel: LayerNorm would remove a shift of all channels alike
        return out
    return model.encoder.stages[0][0].dwconv.register_forward_hook(hook)


@pytest.mark.parametrize('sparse,path', [(True, 'visible'), (True, 'dense'), (False, 'visible')])
def test_masked_regions_leak_only_without_sparse_conv(one_thread, sparse, path):
    torch.manual_seed(0)
    model = FCMAE('atto', decoder_embed_dim=64, sparse=sparse, path=path).eval()
    for p in model.encoder.parameters():
        p.data.normal_(0, 0.1)  # non-zero GRN gamma/beta and biases: every path of a leak is open
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        out = model.forward_encoder(x, MASK)
        moved = x.clone()
        moved[:, :, 5, 40] += 10.  # a pixel of the masked patch (0, 1)
        assert torch.equal(model.forward_encoder(moved, MASK), out)  # masked pixels never reach the encoder
        handle = perturb_masked_site(model)
        leaked = model.forward_encoder(x, MASK)
        handle.remove()
    visible = (leaked - out)[0, :, 0, 0].abs().max()  # stage-3 output at the visible patch (0, 0)
    if sparse:
        assert visible == 0  # submanifold semantics: masked sites are zeroed before every depthwise conv
    else:
        assert visible > 1e-4  # the dense encoder mixes features computed over masked regions into visible sites


def test_dense_encoder_is_convnextv2_forward_on_the_masked_image(one_thread):
    torch.manual_seed(0)
    model = FCMAE('atto', decoder_embed_dim=64, sparse=False).eval()
    reference = ConvNeXtV2('atto', out_indices=(3,)).eval()
    missing = reference.load_state_dict(model.encoder.state_dict(), strict=False).missing_keys
    assert sorted(missing) == ['norm3.bias', 'norm3.weight']
    reference.norm3 = nn.Identity()  # the encoder hands over the last stage before any output norm
    x = torch.randn(2, 3, 64, 64)
    mask = torch.tensor([[0., 1, 1, 0], [1, 0, 0, 1]])
    keep = 1 - mask.view(2, 1, 2, 1, 2, 1).expand(2, 1, 2, 32, 2, 32).reshape(2, 1, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model.forward_encoder(x, mask), reference(x * keep)[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('path', ['visible', 'dense'])
def test_sparse_encoder_hands_over_masked_stage_outputs(one_thread, path):
    torch.manual_seed(0)
    model = FCMAE('atto', decoder_embed_dim=64, path=path).eval()
    x = torch.randn(2, 3, 64, 64)
    mask = torch.tensor([[0., 1, 1, 0], [1, 0, 0, 1]])
    with torch.no_grad():
        stages, last = model.forward_encoder(x, mask, return_stages=True), model.forward_encoder(x, mask)
    assert [s.shape for s in stages] == [(2, 40, 16, 16), (2, 80, 8, 8), (2, 160, 4, 4), (2, 320, 2, 2)]
    assert torch.equal(stages[-1], last)
    for i, s in enumerate(stages):
        scale = 2 ** (3 - i)
        masked = mask.view(2, 1, 2, 1, 2, 1).expand(2, 1, 2, scale, 2, scale).reshape(2, 1, 2 * scale, 2 * scale)
        assert (s * masked).abs().max() == 0 and (s * (1 - masked)).abs().max() > 0


@pytest.mark.parametrize('decoder_type', ['convnext', 'unet', 'unet_noskip', 'transformer'])
def test_each_decoder_builds_from_the_config_and_learns(one_thread, decoder_type):
    torch.manual_seed(0)
    model = build(decoder_type=decoder_type, decoder_depth=2, sparse=decoder_type != 'unet_noskip')
    assert type(model) is FCMAE and model.decoder_type == decoder_type
    x = F.interpolate(torch.rand(2, 3, 4, 4) * 255, size=64, mode='bilinear')  # smooth images, learnable pixels
    mask = torch.tensor([[0., 1, 1, 0], [1, 0, 0, 1]])
    pred, _ = model(model.data_preprocessor({'inputs': list(x)})['inputs'], mode='predict', mask=mask)
    assert pred.shape == (2, 4, 32 * 32 * 3)
    optim = torch.optim.AdamW(model.parameters(), lr=2e-3)
    imgs, losses = model.data_preprocessor({'inputs': list(x)})['inputs'], []
    for _ in range(6):
        loss = model(imgs, mask=mask)['loss']
        optim.zero_grad()
        loss.backward()
        optim.step()
        losses.append(loss.item())
    # every step lowers the loss on the fixed batch and mask (the UNet's pixels at 1/4, 8 channels wide here, move
    # slowest: about 0.5 % in 6 steps against 20-40 % for the ConvNeXt and transformer decoders)
    assert all(torch.isfinite(torch.tensor(losses))), losses
    assert all(b < a for a, b in zip(losses, losses[1:])) and losses[-1] < 0.997 * losses[0], losses


def test_decoder_depth_and_width_apply_to_every_type():
    convnext = FCMAE('atto', decoder_depth=3, decoder_embed_dim=96)
    assert len(convnext.decoder) == 3 and convnext.decoder[0].dwconv.in_channels == 96
    unet = FCMAE('atto', decoder_depth=2, decoder_embed_dim=128, decoder_type='unet')
    assert [len(level) for level in unet.decoder.levels] == [2, 2, 2, 2]
    assert [level[0].dwconv.in_channels for level in unet.decoder.levels] == [128, 64, 32, 16]
    assert [s.in_channels for s in unet.decoder.skips] == [160, 80, 40]  # atto stages 2, 1, 0
    assert unet.pred.out_channels == 4 * 4 * 3
    noskip = FCMAE('atto', decoder_depth=2, decoder_embed_dim=128, decoder_type='unet_noskip')
    assert noskip.decoder.skips is None
    transformer = FCMAE('atto', decoder_depth=4, decoder_embed_dim=128, decoder_type='transformer')
    assert len(transformer.decoder.blocks) == 4 and transformer.decoder.num_heads == 2
    assert transformer.decoder.blocks[0].attn.qkv.in_features == 128


def test_unet_without_skips_is_unet_with_zeroed_skips(one_thread):
    torch.manual_seed(0)
    skip = FCMAE('atto', decoder_embed_dim=64, decoder_type='unet').eval()
    noskip = FCMAE('atto', decoder_embed_dim=64, decoder_type='unet_noskip').eval()
    result = skip.load_state_dict(noskip.state_dict(), strict=False)
    assert not result.unexpected_keys and {k.split('.')[1] for k in result.missing_keys} == {'skips'}
    x, mask = torch.randn(2, 3, 64, 64), torch.tensor([[0., 1, 1, 0], [1, 0, 0, 1]])
    with torch.no_grad():
        with_skips = skip(x, mode='predict', mask=mask)[0]
        for conv in skip.decoder.skips:
            conv.weight.zero_(), conv.bias.zero_()
        assert torch.equal(skip(x, mode='predict', mask=mask)[0], noskip(x, mode='predict', mask=mask)[0])
    assert (with_skips - noskip(x, mode='predict', mask=mask)[0]).abs().max() > 1e-4  # the skips carry something


def test_bad_options_are_named():
    with pytest.raises(ValueError, match="decoder_type='mlp'"):
        FCMAE('atto', decoder_type='mlp')
    with pytest.raises(ValueError, match="init='official'"):
        FCMAE('atto', decoder_type='unet', init='official')
    with pytest.raises(ValueError, match='multiple of 8'):
        FCMAE('atto', decoder_type='unet', decoder_embed_dim=20)
    with pytest.raises(ValueError, match='mask_ratio=1.0'):
        build(mask_ratio=1.0)
    with pytest.raises(ValueError, match="grn_pooling='batch'"):
        FCMAE('atto', sparse=False, grn_pooling='batch')
    with pytest.raises(ValueError, match='mask_ratio=0.9 on a 2x2 patch grid'):  # keeps int(4 × 0.1) = 0 patches
        FCMAE('atto', mask_ratio=0.9, decoder_embed_dim=64)(torch.zeros(1, 3, 64, 64))
