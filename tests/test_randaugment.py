"""The fine-tuning RandAugment (`rand-m9-mstd0.5-inc1`, timm) runs on the pinned Pillow at every magnitude: each op of
the policy at its extremes, Posterize at 0 bits giving the black image that Pillow < 12 gave, and the real training
transform over enough draws to reach magnitude 10 (Pillow >= 12 refuses posterize(img, 0))."""
import random

import numpy as np
import pytest
from PIL import Image

from pretrain.data import finetune_transform, posterize

IMG = Image.fromarray(np.random.default_rng(0).integers(0, 256, (48, 40, 3), dtype=np.uint8))


def rand_augment(transform):
    ops = [t for t in transform.transforms if type(t).__name__ == 'RandAugment']
    assert len(ops) == 1
    return ops[0]


def test_the_policy_is_the_official_one():
    ra = rand_augment(finetune_transform(size=32))
    names = [op.name for op in ra.ops]
    assert len(names) == 15 and 'PosterizeIncreasing' in names and 'SolarizeIncreasing' in names
    assert {(op.magnitude, op.magnitude_std, op.prob) for op in ra.ops} == {(9, 0.5, 0.5)} and ra.num_layers == 2


@pytest.mark.parametrize('magnitude', [0, 9, 10])
def test_every_op_at_its_extreme_magnitudes(magnitude):
    ra = rand_augment(finetune_transform(size=32))
    for op in ra.ops:
        op.prob, op.magnitude, op.magnitude_std = 1., magnitude, 0.
        out = op(IMG.copy())
        assert isinstance(out, Image.Image) and (out.mode, out.size) == ('RGB', IMG.size), op.name
    posterize_op = next(op for op in ra.ops if op.name == 'PosterizeIncreasing')
    kept = 4 - int(magnitude / 10 * 4)  # timm's increasing posterize: keep 4 - ⌊4m/10⌋ bits
    expected = np.asarray(IMG) & np.uint8((0xff << (8 - kept)) & 0xff)  # keep the `kept` high bits; 0 bits: black
    np.testing.assert_array_equal(np.asarray(posterize_op(IMG.copy())), expected)


def test_posterize_bits_by_hand():
    arr = np.asarray(IMG)
    for bits in range(0, 9):
        mask = np.uint8((0xff << (8 - bits)) & 0xff)
        np.testing.assert_array_equal(np.asarray(posterize(IMG, bits)), arr & mask, err_msg=f'{bits} bits')


def test_real_transform_reaches_magnitude_10():
    """4,000 draws of the training transform at 32 px: Gauss(9, 0.5) clipped at 10 reaches 10 in 2.3 % of op draws,
    so Posterize runs at 0 bits several times (counted); the transform never raises."""
    transform = finetune_transform(size=32)
    ra, bits_seen = rand_augment(transform), []
    for op in ra.ops:
        if op.name == 'PosterizeIncreasing':
            fn = op.aug_fn
            op.aug_fn = lambda img, bits, *a, _fn=fn, **kw: bits_seen.append(bits) or _fn(img, bits, *a, **kw)
    random.seed(0)
    np.random.seed(0)
    for _ in range(4000):
        assert transform(IMG).shape == (3, 32, 32)
    assert bits_seen.count(0) >= 2 and min(bits_seen) == 0
