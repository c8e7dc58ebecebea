"""Hostile input: each bad file in a test, its outcome asserted: a named, counted skip, a faithful
decode, or an error before training starts (bad COCO / ADE20K annotations: test_fault_annotations.py).
docs/FAULTS.md lists the same cases."""
import io
import logging

import numpy as np
import pytest
import torch
from mmengine.logging import MMLogger
from PIL import Image

from backbone.convnextv2 import GRN
from backbone.masked import masked_grn
from pretrain.data import ImageFolderDataset, load_rgb

EVAL = dict(type='eval', size=32)  # resize 36 + center crop 32: deterministic


def write_folder(root, files: dict):
    """files: {'split/class/name': bytes or an (H, W[, C]) array saved in the name's format}."""
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            Image.fromarray(content).save(path)


def png_bytes(array) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format='PNG')
    return buf.getvalue()


RGB = np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8)


def test_unreadable_images_are_named_and_counted(tmp_path):
    write_folder(tmp_path, {
        'train/a/0.JPEG': RGB, 'train/a/1_corrupt.JPEG': b'\xff\xd8\xff\xe0 not a JPEG', 'train/a/2.JPEG': RGB[::-1],
        'train/a/3_empty.JPEG': b'', 'train/a/4.JPEG': RGB,
        'train/b/0.png': RGB, 'train/b/1_truncated.png': png_bytes(RGB)[:300], 'train/b/2.png': RGB[:, ::-1]})
    ds = ImageFolderDataset(str(tmp_path), 'train', pipeline=EVAL)
    records, handler = [], logging.Handler()
    handler.emit = lambda record: records.append(record.getMessage())
    logger = MMLogger.get_current_instance()  # where print_log(logger='current') goes, whatever earlier tests set up
    logger.addHandler(handler)
    try:
        samples = [ds[i] for i in range(len(ds))]
    finally:
        logger.removeHandler(handler)
    assert int(ds.skipped) == 3  # each bad file met once; the next readable image stands in
    for bad, stand_in in ((1, 2), (3, 4), (6, 7)):
        assert torch.equal(samples[bad]['inputs'], samples[stand_in]['inputs'])
        assert samples[bad]['data_samples'] == samples[stand_in]['data_samples']
    log = '\n'.join(records)
    for name in ('a/1_corrupt.JPEG', 'a/3_empty.JPEG', 'b/1_truncated.png'):
        assert f'skipped unreadable image {tmp_path / "train" / name}' in log


def test_skips_counted_exactly_across_loader_workers(tmp_path):
    """2 workers, 12 corrupt files (each followed by a readable one, so each is met once): the
    per-worker slots in shared memory add up to the exact count in the main process; a count kept in each worker's own
    memory would read 0 here."""
    files = {}
    for i in range(12):
        files[f'train/a/{i:02d}_0_bad.JPEG'] = b'' if i % 2 else b'\xff\xd8\xff\xe0 not a JPEG'
        files[f'train/a/{i:02d}_1_good.png'] = RGB
    write_folder(tmp_path, files)
    for context in ('fork',):  # spawn gives the same count (checked by hand) but costs ~20 s of worker start-up
        ds = ImageFolderDataset(str(tmp_path), 'train', pipeline=EVAL)
        loader = torch.utils.data.DataLoader(ds, batch_size=3, num_workers=2, multiprocessing_context=context)
        batches = list(loader)
        assert sum(len(b['data_samples']) for b in batches) == 24 and ds.skipped == 12, context


def test_all_images_unreadable_is_an_error(tmp_path):
    write_folder(tmp_path, {'train/a/0.JPEG': b'', 'train/b/0.JPEG': b'junk'})
    with pytest.raises(RuntimeError, match='none of the 2 images is readable'):
        ImageFolderDataset(str(tmp_path), 'train', pipeline=EVAL)[0]


def test_grey_rgba_palette_cmyk_and_16_bit_decode_to_rgb(tmp_path):
    grey = RGB[..., 0]
    cases = {  # file -> expected 8-bit RGB, computed here without PIL's conversions
        'grey.png': (Image.fromarray(grey), np.repeat(grey[..., None], 3, -1)),
        'rgba.png': (Image.fromarray(np.dstack([RGB, grey])), RGB),  # alpha dropped, colours kept
        'grey16.png': (Image.fromarray(grey.astype(np.uint16) * 257), np.repeat(grey[..., None], 3, -1)),
        'palette.png': (Image.fromarray(RGB).quantize(16), None),
        'cmyk.tiff': (Image.fromarray(RGB).convert('CMYK'), RGB),  # C = 255 - R, K = 0: lossless
    }
    for name, (img, expected) in cases.items():
        img.save(tmp_path / name)
        out = np.asarray(load_rgb(tmp_path / name))
        assert out.shape == (40, 40, 3) and out.dtype == np.uint8, name
        if name == 'palette.png':
            pal = np.asarray(img.getpalette()[:48], np.uint8).reshape(16, 3)
            expected = pal[np.asarray(img)]
        np.testing.assert_array_equal(out, expected, err_msg=name)
    assert Image.open(tmp_path / 'grey16.png').mode.startswith('I')  # really 16-bit on disk
    pil_alone = np.asarray(Image.open(tmp_path / 'grey16.png').convert('RGB'))[..., 0]
    assert (pil_alone[grey > 0] == 255).all()  # PIL's own convert clips: every non-black pixel white


def test_class_folders_differ_between_train_and_val(tmp_path):
    write_folder(tmp_path, {'train/a/0.png': RGB, 'train/b/0.png': RGB, 'val/a/0.png': RGB, 'val/c/0.png': RGB})
    ImageFolderDataset(str(tmp_path), 'train', pipeline=EVAL)
    with pytest.raises(ValueError, match=r"val differ from .*train: missing \['b'\] \(1\), extra \['c'\] \(1\)"):
        ImageFolderDataset(str(tmp_path), 'val', pipeline=EVAL)


# ---------------------------------------------------------------------------- numerics: FCMAE's masked GRN
@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
@pytest.mark.parametrize('pooling', ['sample', 'batch'])
def test_masked_grn_half_precision_large_activations_stay_finite(dtype, pooling):
    """masked_grn takes its own L2 statistics (visible sites only): in float32 under autocast, so activations whose
    half-precision sum of squares overflows (fp16 max 65504) still give finite outputs equal to float64's."""
    torch.manual_seed(3)
    grn = GRN(8)
    torch.nn.init.normal_(grn.gamma)
    torch.nn.init.normal_(grn.beta)
    x = (torch.randn(2, 28, 28, 8) * 300).to(dtype)  # ~784 visible sites x 9e4 per channel
    keep = (torch.rand(2, 28, 28, 1) > 0.6).to(dtype)
    assert torch.isinf(((x * keep).float() ** 2).sum(dim=(1, 2)).to(torch.float16)).all()  # overflows fp16
    with torch.autocast('cpu', dtype=dtype):
        out = masked_grn(grn, x, keep, pooling)
    assert out.dtype == dtype and torch.isfinite(out).all()
    ref = masked_grn(grn.double(), x.double(), keep.double(), pooling)
    torch.testing.assert_close(out.double(), ref, rtol=2e-2, atol=2e-2 * 300)
