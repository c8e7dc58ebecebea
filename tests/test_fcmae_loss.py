"""FCMAE's patch layout, norm-pix loss on masked patches, default preprocessing and modes, against hand computations."""
import numpy as np
import pytest
import torch

from pretrain.fcmae import FCMAE

ARCH = dict(depths=(1, 1, 2, 1), dims=(8, 16, 32, 64))


pytestmark = pytest.mark.usefixtures('one_thread')  # conftest.py


def hand_patch(img: np.ndarray, row: int, col: int) -> np.ndarray:
    """The pixels of patch (row, col) of a (3, H, W) image in (pixel row, pixel col, channel) order."""
    return np.array([img[c, 32 * row + y, 32 * col + x] for y in range(32) for x in range(32) for c in range(3)])


@pytest.mark.parametrize('norm_pix', [True, False])
@pytest.mark.parametrize('mask', [[1, 0], [1, 1], [0, 1]])
def test_loss_equals_hand_computation(norm_pix, mask):
    model = FCMAE(ARCH, decoder_embed_dim=16, norm_pix_loss=norm_pix)
    g = torch.Generator().manual_seed(0)
    imgs = torch.randn(1, 3, 32, 64, generator=g, dtype=torch.float64) * 2 + 1
    pred = torch.randn(1, 2, 32 * 32 * 3, generator=g, dtype=torch.float64)
    losses = []
    for col in range(2):
        target = hand_patch(imgs[0].numpy(), 0, col)
        if norm_pix:
            target = (target - target.mean()) / np.sqrt(target.var(ddof=1) + 1e-6)
        losses.append(np.mean((pred[0, col].numpy() - target) ** 2))
    expected = sum(l for l, m in zip(losses, mask) if m) / sum(mask)  # masked patches only
    mask = torch.tensor([mask], dtype=torch.float64)
    assert abs(model.forward_loss(imgs, pred, mask).item() - expected) < 1e-12
    pred_4d = pred.transpose(1, 2).reshape(1, -1, 1, 2)  # the decoder's (N, p·p·3, h, w) layout
    assert abs(model.forward_loss(imgs, pred_4d, mask).item() - expected) < 1e-12
    visible_changed = pred + 10 * (1 - mask)[..., None]
    assert abs(model.forward_loss(imgs, visible_changed, mask).item() - expected) < 1e-12


def test_patchify_layout_and_roundtrip():
    model = FCMAE(ARCH, decoder_embed_dim=16)
    imgs = torch.randn(2, 3, 64, 96)
    patches = model.patchify(imgs)
    assert patches.shape == (2, 6, 3072)
    np.testing.assert_array_equal(patches[1, 5].numpy(), hand_patch(imgs[1].numpy(), 1, 2))  # row-major patches
    assert torch.equal(model.unpatchify(patches, 64, 96), imgs)
    assert torch.equal(model.unpatchify(patches, 2, 3), imgs)  # the patch grid is accepted too


def test_default_preprocessor_and_modes():
    model = FCMAE(ARCH, decoder_embed_dim=16)
    raw = [torch.randint(0, 256, (3, 64, 96), dtype=torch.uint8) for _ in range(2)]
    data = model.data_preprocessor(dict(inputs=raw), training=True)
    mean = torch.tensor([123.675, 116.28, 103.53]).view(3, 1, 1)
    std = torch.tensor([58.395, 57.12, 57.375]).view(3, 1, 1)
    torch.testing.assert_close(data['inputs'], (torch.stack(raw).float() - mean) / std)
    torch.manual_seed(1)
    loss = model(**data, mode='loss')['loss']
    torch.manual_seed(1)
    pred, mask = model(**data, mode='predict')
    assert pred.shape == (2, 6, 3072) and mask.shape == (2, 6)
    assert (mask.sum(1) == 6 - int(6 * 0.4)).all()
    torch.testing.assert_close(loss, model.forward_loss(data['inputs'], pred, mask))
    with pytest.raises(ValueError, match="mode='logits'"):
        model(**data, mode='logits')


@pytest.mark.parametrize('path', ['visible', 'dense'])
def test_every_parameter_gets_a_gradient(path):
    """DDP without find_unused_parameters needs every parameter in the graph."""
    torch.manual_seed(0)
    model = FCMAE(ARCH, decoder_embed_dim=16, path=path)
    model(torch.randn(2, 3, 64, 96))['loss'].backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, missing
