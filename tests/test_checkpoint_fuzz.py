"""Seeded fuzzing of the checkpoint loader: whatever bytes a file holds, backbone.checkpoint either loads it into the
model or raises CheckpointError naming the file, never a bare KeyError / UnicodeDecodeError / TypeError ... from
torch's weights-only unpickler (the exceptions caught were found with this test)."""
import random
import warnings

import pytest
import torch

from backbone.checkpoint import CheckpointError, load_pretrained
from backbone.convnextv2 import ConvNeXtV2

TINY = dict(depths=(1, 1, 1, 1), dims=(8, 8, 8, 8))
PICKLE_OPS = b'()]}.,0123456789IJKLMNSVXabcdehjklqrstu\x80\x02\x85\x86\x87\x8c\x94\x95RQ'  # frequent opcodes


@pytest.fixture(scope='module')
def sources(tmp_path_factory) -> dict:
    """A real small checkpoint, in torch's zip and legacy formats."""
    folder = tmp_path_factory.mktemp('fuzz')
    sd = ConvNeXtV2(TINY).state_dict()
    torch.save({'model': sd, 'epoch': 3}, folder / 'zip.pth')
    torch.save({'model': sd}, folder / 'legacy.pth', _use_new_zipfile_serialization=False)
    return {name: (folder / f'{name}.pth').read_bytes() for name in ('zip', 'legacy')}


def contents(rng: random.Random, sources: dict, short: int, cuts: int, flips: int):
    """(kind, bytes): short random bytes, texts and pickle-opcode soups, then truncations and byte flips of the real
    checkpoints (fewer: each reads a whole file)."""
    text = 'abcdefghijklmnopqrstuvwxyz0123456789 \n{}[]():.,\'"-_=+'
    for i in range(short):
        kind, size = ('bytes', 'text', 'opcodes')[i % 3], rng.randint(1, 64)
        if kind == 'bytes':
            yield kind, rng.randbytes(size)
        elif kind == 'text':
            yield kind, ''.join(rng.choice(text) for _ in range(size)).encode()
        else:
            yield kind, b'\x80\x02' + bytes(rng.choice(PICKLE_OPS) for _ in range(size))
    for i in range(cuts + flips):
        data = sources[('zip', 'legacy')[i % 2]]
        if i < cuts:
            yield 'cut', data[:rng.randrange(1, len(data))]
        else:
            flipped = bytearray(data)
            for _ in range(rng.randint(1, 3)):
                flipped[rng.randrange(len(data))] = rng.randrange(256)
            yield 'flip', bytes(flipped)


def test_any_bytes_load_or_raise_checkpoint_error(tmp_path, sources):
    rng, model, path = random.Random(0), ConvNeXtV2(TINY), tmp_path / 'fuzz.pth'
    outcomes = {}
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # torch warns about unknown pickle protocols in random bytes
        for kind, data in contents(rng, sources, short=2400, cuts=100, flips=40):
            path.write_bytes(data)
            try:
                load_pretrained(model, path)
                outcome = 'loaded'
            except CheckpointError as e:
                assert str(e).startswith(str(path)), f'{data[:40]!r}: {e}'  # the message names the file
                outcome = 'CheckpointError'
            outcomes.setdefault(kind, set()).add(outcome)
    assert all(outcomes[k] == {'CheckpointError'} for k in ('bytes', 'text', 'opcodes', 'cut')), outcomes
    assert outcomes['flip'] == {'loaded', 'CheckpointError'}  # a flip inside tensor data is still a checkpoint
