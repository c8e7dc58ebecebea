"""The masked FCMAE encoder equals a submanifold-sparse ConvNeXt V2 on the visible patches, both paths."""
import pytest
import torch
import torch.nn.functional as F

from backbone.checkpoint import load_pretrained
from backbone.convnextv2 import ConvNeXtV2
from backbone.grn import BN, GRN
from backbone.masked import MaskedConvNeXtV2
from pretrain.fcmae import FCMAE

ARCH = dict(depths=(1, 1, 2, 1), dims=(8, 16, 32, 64))
MASKS = {  # (2, 2·3) masks for 64×96 images, 1 = masked; every sample keeps the same number of patches
    'half': [[1, 0, 1, 0, 1, 0], [0, 0, 1, 1, 0, 1]],
    'all_but_one': [[1, 1, 1, 1, 0, 1], [0, 1, 1, 1, 1, 1]],
    'last_row': [[0, 0, 0, 1, 1, 1], [1, 0, 1, 0, 1, 0]],
    'none': [[0] * 6, [0] * 6],
}


pytestmark = pytest.mark.usefixtures('one_thread')  # conftest.py


def randomize(model: torch.nn.Module, seed: int = 0):
    """Non-trivial values everywhere: zero GRN γ/β or unit LayerNorms would hide mistakes."""
    g = torch.Generator().manual_seed(seed)
    for name, p in model.named_parameters():
        base = 1. if (name.endswith('weight') and p.dim() == 1) else 0.  # LayerNorm weights around 1
        p.data = base + 0.3 * torch.randn(p.shape, generator=g, dtype=p.dtype)


def neighbours(sites):
    """(49, P) index of each site's 7×7 neighbours among the visible sites; P (one past the end) where masked."""
    where = {s: k for k, s in enumerate(sites)}
    return torch.tensor([[where.get((y + dy, x + dx), len(sites)) for y, x in sites]
                         for dy in range(-3, 4) for dx in range(-3, 4)])


def sparse_dwconv(x, nbrs, weight, bias):
    """Submanifold depthwise conv: each visible site sums its visible 7×7 neighbours only. x (P, C)."""
    padded = torch.cat([x, x.new_zeros(1, x.shape[1])])  # row P: "no visible neighbour"
    return bias + sum(padded[nbr] * weight[:, 0, k // 7, k % 7] for k, nbr in enumerate(nbrs))


PAPER_GRN = '{}, aggregation=l2, normalization=divisive, residual=True, form=full'


def on_visible_sites(grn, ys, over_batch: bool):
    """Any other option in GRN's place: the module itself on the (P, C) visible sites of each sample as one (1, P, 1, C)
    map, or on those of the whole batch together (batch pooling; BN always): no mask involved."""
    if not over_batch:
        return [grn(y.view(1, -1, 1, y.shape[-1])).view(y.shape) for y in ys]
    out = grn(torch.cat(ys).view(1, -1, 1, ys[0].shape[-1])).view(-1, ys[0].shape[-1])
    return list(out.split([len(y) for y in ys]))


def reference_encoder(model: MaskedConvNeXtV2, imgs, mask, pooling):
    """The encoder written from the definition, per sample on lists of visible sites, with no dense masking."""
    n, _, height, width = imgs.shape
    h, w = height // 32, width // 32
    sites, feats = [], []
    stem, stem_ln = model.downsample_layers[0]
    for b in range(n):
        cells = [(r, c) for r in range(h) for c in range(w) if mask[b][r * w + c] == 0]
        sites.append([(8 * r + i, 8 * c + j) for r, c in cells for i in range(8) for j in range(8)])
        patches = torch.stack([imgs[b, :, 4 * y:4 * y + 4, 4 * x:4 * x + 4] for y, x in sites[b]])
        feats.append(F.layer_norm(torch.einsum('pchw,ochw->po', patches, stem.weight) + stem.bias, stem_ln.weight.shape,
                                  stem_ln.weight, stem_ln.bias, 1e-6))
    for i, stage in enumerate(model.stages):
        if i > 0:
            ln, conv = model.downsample_layers[i]
            for b in range(n):
                x = F.layer_norm(feats[b], ln.weight.shape, ln.weight, ln.bias, 1e-6)
                where = {s: k for k, s in enumerate(sites[b])}
                parents = sorted({(y // 2, x_ // 2) for y, x_ in sites[b]})
                out = conv.bias.expand(len(parents), -1)
                for dy in range(2):
                    for dx in range(2):  # a KeyError here would mean a half-visible 2×2 cell
                        child = torch.tensor([where[(2 * y + dy, 2 * x_ + dx)] for y, x_ in parents])
                        out = out + x[child] @ conv.weight[:, :, dy, dx].T
                sites[b], feats[b] = parents, out
        nbrs = [neighbours(s) for s in sites]
        for blk in stage:
            ys = [blk.act(blk.pwconv1(blk.norm(sparse_dwconv(feats[b], nbrs[b], blk.dwconv.weight, blk.dwconv.bias))))
                  for b in range(n)]
            if type(blk.grn) is not GRN or blk.grn.extra_repr() != PAPER_GRN.format(blk.grn.gamma.shape[-1]):
                ys = on_visible_sites(blk.grn, ys, pooling == 'batch' or isinstance(blk.grn, BN))
            elif pooling == 'sample':  # the paper's GRN, written out
                gx = [y.pow(2).sum(0, keepdim=True).sqrt() for y in ys]
            else:
                gx = [torch.cat(ys).pow(2).sum(0, keepdim=True).sqrt()] * n
            if type(blk.grn) is GRN and blk.grn.extra_repr() == PAPER_GRN.format(blk.grn.gamma.shape[-1]):
                gamma, beta = blk.grn.gamma.reshape(-1), blk.grn.beta.reshape(-1)
                ys = [gamma * (y * g / (g.mean() + 1e-6)) + beta + y for y, g in zip(ys, gx)]
            feats = [f + blk.pwconv2(y) for f, y in zip(feats, ys)]
    out = imgs.new_zeros(n, h, w, feats[0].shape[1])
    for b in range(n):
        rows, cols = zip(*sites[b])
        out[b, torch.tensor(rows), torch.tensor(cols)] = feats[b]
    return out.permute(0, 3, 1, 2)


def reference_loss(imgs, pred, mask):
    """The official norm-pix loss written per masked patch: the patch's pixels in (row, col, channel) order,
    normalised with their mean and unbiased variance + 1e-6, squared error averaged over pixels, then over masked
    patches. pred (N, L, 32·32·3), mask (N, L) with 1 = masked."""
    w, losses = imgs.shape[-1] // 32, []
    for b, patch in torch.nonzero(mask).tolist():
        r, c = divmod(patch, w)
        target = imgs[b, :, 32 * r:32 * r + 32, 32 * c:32 * c + 32].permute(1, 2, 0).reshape(-1)
        target = (target - target.mean()) / torch.sqrt(target.var(unbiased=True) + 1e-6)
        losses.append((pred[b, patch] - target).pow(2).mean())
    return torch.stack(losses).mean()


def outputs_and_grads(encoder, forward, imgs, weights):
    """forward(image) and d(Σ forward(image)·weights)/d(image, encoder parameters)."""
    imgs = imgs.detach().requires_grad_()
    encoder.zero_grad()
    out = forward(imgs)
    (out * weights).sum().backward()
    return [out.detach(), imgs.grad] + [p.grad.clone() for p in encoder.parameters()]


@pytest.mark.parametrize('pooling', ['sample', 'batch'])
@pytest.mark.parametrize('mask_name', list(MASKS))
def test_dense_and_visible_equal_sparse_reference(pooling, mask_name):
    torch.manual_seed(0)
    model = MaskedConvNeXtV2(ARCH, grn_pooling=pooling).double()
    randomize(model)
    mask = torch.tensor(MASKS[mask_name], dtype=torch.float64)
    imgs = torch.randn(2, 3, 64, 96, dtype=torch.float64)
    weights = torch.randn(2, 64, 2, 3, dtype=torch.float64)
    expected = outputs_and_grads(model, lambda x: reference_encoder(model, x, mask, pooling), imgs, weights)
    assert expected[0].abs().max() > 0.1 and expected[1].abs().max() > 1e-3  # a non-trivial comparison
    for path in ('dense', 'visible'):
        model.path = path
        got = outputs_and_grads(model, lambda x: model(x, mask), imgs, weights)
        for name, a, b in zip(['output', 'image grad'] + [n for n, _ in model.named_parameters()], got, expected):
            assert (a - b).abs().max() <= 1e-10, f'{path}: {name} differs by {(a - b).abs().max():.3g}'


@pytest.mark.parametrize('path', ['dense', 'visible'])
def test_masked_pixels_change_nothing_the_model_sees(path):
    torch.manual_seed(0)
    model = FCMAE(ARCH, decoder_embed_dim=16, path=path).eval()
    randomize(model)
    mask = torch.tensor(MASKS['last_row'])
    imgs = torch.randn(2, 3, 64, 96)
    changed = imgs + 5 * torch.randn_like(imgs) * (model.unpatchify(mask[..., None].expand(-1, -1, 3072), 64, 96))
    assert (changed != imgs).sum() == 6 * 32 * 32 * 3  # only the pixels of the 6 masked patches moved
    latent, pred = [], []
    for x in (imgs, changed):
        latent.append(model.forward_encoder(x, mask))
        pred.append(model(x, mode='predict', mask=mask)[0])
    assert torch.equal(latent[0], latent[1]) and torch.equal(pred[0], pred[1])
    # the loss moves only through the target pixels of masked patches, never through the prediction
    loss = model(changed, mode='loss', mask=mask)['loss']
    torch.testing.assert_close(loss, reference_loss(changed, pred[0], mask), rtol=1e-6, atol=0)
    assert not torch.isclose(loss, reference_loss(changed, pred[0], torch.ones_like(mask)))  # visible patches differ


@pytest.mark.parametrize('path', ['dense', 'visible'])
def test_nothing_masked_equals_convnextv2(path):
    torch.manual_seed(0)
    encoder = MaskedConvNeXtV2(ARCH, path=path).double()
    randomize(encoder)
    dense = ConvNeXtV2(ARCH, out_indices=()).double()
    dense.load_state_dict(encoder.state_dict(), strict=True)  # the very same parameter names
    imgs = torch.randn(2, 3, 64, 96, dtype=torch.float64)
    x = imgs
    for i in range(4):
        x = dense.forward_stage(i, x)
    assert (encoder(imgs, torch.zeros(2, 6)) - x).abs().max() <= 1e-10


def test_fcmae_parameter_names_and_loading_into_convnextv2():
    model = FCMAE(ARCH, decoder_embed_dim=16, decoder_depth=2)
    backbone = ConvNeXtV2(ARCH)
    report = load_pretrained(backbone, dict(state_dict=model.state_dict(), meta={}))  # as mmengine's Runner saves
    assert not report['errors'] and report['loaded'] == len(model.encoder.state_dict())
    assert all(torch.equal(v, backbone.state_dict()[k]) for k, v in model.encoder.state_dict().items())
    keys = list(model.state_dict())
    encoder = [k[len('encoder.'):] for k in keys if k.startswith('encoder.')]
    assert encoder == list(ConvNeXtV2(ARCH, out_indices=()).state_dict())
    rest = {k.split('.')[0] for k in keys if not k.startswith('encoder.')}
    assert rest == {'proj', 'mask_token', 'decoder', 'pred'}
    assert model.mask_token.shape == (1, 16, 1, 1) and model.pred.weight.shape == (32 * 32 * 3, 16, 1, 1)
    assert len(model.decoder) == 2


# (image size, patches, kept): kept = int(patches × 0.4) at mask ratio 0.6, counted by hand (224: 19 of 49 kept)
@pytest.mark.parametrize('size, length, kept', [((224, 224), 49, 19), ((64, 96), 6, 2), ((256, 256), 64, 25),
                                                ((96, 160), 15, 6), ((384, 384), 144, 57)])
def test_random_masking_keeps_int_count(size, length, kept):
    model = FCMAE(ARCH, decoder_embed_dim=16)
    mask = model.random_masking(64, *size)
    assert mask.shape == (64, length) and set(mask.unique().tolist()) == {0., 1.}
    assert (mask.sum(1) == length - kept).all()
    assert len({tuple(m.tolist()) for m in mask}) > 1  # drawn per sample


def test_bad_inputs_raise_clear_errors():
    model = FCMAE(ARCH, decoder_embed_dim=16)
    with pytest.raises(ValueError, match=r'\(1, 3, 64, 80\).*multiples of the 32'):
        model(torch.zeros(1, 3, 64, 80))
    with pytest.raises(ValueError, match='same number of visible patches'):
        model.forward_encoder(torch.zeros(2, 3, 64, 64), torch.tensor([[0., 1, 1, 1], [0, 0, 1, 1]]))
    with pytest.raises(ValueError, match=r'expected \(2, 4\)'):
        model.forward_encoder(torch.zeros(2, 3, 64, 64), torch.zeros(2, 6))
    with pytest.raises(ValueError, match='grn_pooling'):
        FCMAE(ARCH, grn_pooling='channel')
    with pytest.raises(ValueError, match=r"path='minkowski': expected one of \('visible', 'dense'\)"):
        FCMAE(ARCH, path='minkowski')  # no MinkowskiEngine path, installed or not: 'visible' computes the same


GRN_OPTIONS = [dict(type='GRN', aggregation='l1'), dict(type='GRN', aggregation='avg'),
               dict(type='GRN', normalization='standardize'), dict(type='GRN', normalization='inverse_sum'),
               dict(type='GRN', residual=False), dict(type='GRN', form='affine'), dict(type='GRN', form='x_gx'),
               dict(type='GRN', form='x_nx'), dict(type='none'), dict(type='LRN'), dict(type='BN'), dict(type='LN'),
               dict(type='SE')]


def option_id(grn: dict) -> str:
    return '-'.join(str(v) for v in grn.values())


@pytest.mark.parametrize('grn, pooling', [(g, 'sample') for g in GRN_OPTIONS] + [
    (dict(type='GRN', aggregation='avg'), 'batch'), (dict(type='SE'), 'batch')], ids=lambda v: option_id(v)
    if isinstance(v, dict) else v)
def test_grn_options_dense_and_visible_equal_sparse_reference(grn, pooling):
    """Every option in GRN's place is exact on both paths: statistics over the visible sites only."""
    torch.manual_seed(0)
    model = MaskedConvNeXtV2(ARCH, grn_pooling=pooling, grn=grn).double()
    randomize(model)
    mask = torch.tensor(MASKS['half'], dtype=torch.float64)
    imgs = torch.randn(2, 3, 64, 96, dtype=torch.float64)
    weights = torch.randn(2, 64, 2, 3, dtype=torch.float64)
    expected = outputs_and_grads(model, lambda x: reference_encoder(model, x, mask, pooling), imgs, weights)
    assert expected[0].abs().max() > 0.1 and expected[1].abs().max() > 1e-6  # a non-trivial comparison
    for path in ('dense', 'visible'):
        model.path = path
        got = outputs_and_grads(model, lambda x: model(x, mask), imgs, weights)
        for name, a, b in zip(['output', 'image grad'] + [n for n, _ in model.named_parameters()], got, expected):
            scale = max(1., b.abs().max().item())
            assert (a - b).abs().max() <= 1e-10 * scale, f'{path}: {name} differs by {(a - b).abs().max():.3g}'


@pytest.mark.parametrize('grn', [dict(type='CBAM'), dict(type='BN'), dict(type='SE')], ids=option_id)
def test_grn_options_masked_pixels_change_nothing_and_unmasked_equal_convnextv2(grn):
    """CBAM's spatial 7×7 conv needs the grid: dense path only (zeros at masked sites), a clear error on 'visible'."""
    torch.manual_seed(0)
    encoder = MaskedConvNeXtV2(ARCH, path='dense', grn=grn).double()
    randomize(encoder)
    mask = torch.tensor(MASKS['last_row'])
    imgs = torch.randn(2, 3, 64, 96, dtype=torch.float64)
    pixels = FCMAE(ARCH, decoder_embed_dim=16).unpatchify(mask[..., None].expand(-1, -1, 3072), 64, 96)
    changed = imgs + 5 * torch.randn_like(imgs) * pixels
    out = encoder(imgs, mask)
    assert out.abs().max() > 0.1 and torch.equal(out, encoder(changed, mask))
    dense = ConvNeXtV2(ARCH, out_indices=(), grn=grn).double()
    dense.load_state_dict(encoder.state_dict(), strict=True)
    x = imgs
    for i in range(4):
        x = dense.forward_stage(i, x)
    assert (encoder(imgs, torch.zeros(2, 6)) - x).abs().max() <= 1e-10
    if grn['type'] == 'CBAM':
        with pytest.raises(ValueError, match="grn type='CBAM' convolves over the spatial grid.*path='dense'"):
            MaskedConvNeXtV2(ARCH, grn=grn)
        encoder.path = 'visible'
        with pytest.raises(ValueError, match="grn type='CBAM'"):
            encoder(imgs, mask)


def test_fcmae_passes_grn_to_encoder_and_decoder():
    model = FCMAE(ARCH, decoder_embed_dim=16, decoder_depth=2, grn=dict(type='LN'))
    assert {type(b.grn).__name__ for b in [*model.decoder, *(b for s in model.encoder.stages for b in s)]} == {'LN'}
    assert model(torch.randn(2, 3, 64, 64), mode='loss')['loss'].isfinite()
