"""Seeking in a stream decodes only the blocks a read overlaps."""

import io

import pytest

import nacrith_codec as nc
from nacrith_codec import block, random_access
from conftest import SMALL


@pytest.fixture(scope="module")
def multi(alice):
    data = alice[7000:8200]
    return data, nc.compress(data, block_size=300, **SMALL)


def test_index_from_both_ends(multi):
    data, packed = multi
    header, raw, offsets, size = random_access.read_index(io.BytesIO(packed))
    assert size == len(data) and raw == [0, 300, 600, 900, 1200]
    assert offsets[0] == len(header) and offsets[-1] < len(packed)
    assert random_access.original_size(io.BytesIO(packed)) == len(data)


def test_seek_decodes_only_the_overlapping_block(multi, monkeypatch):
    data, packed = multi
    decoded = []
    original = block.BlockCoder.decode
    monkeypatch.setattr(block.BlockCoder, "decode",
                        lambda self, b: decoded.append(b.raw_len) or original(self, b))
    with nc.open(io.BytesIO(packed)) as f:
        f.seek(650)
        assert f.read(40) == data[650:690]
        assert len(decoded) == 1
        f.seek(-30, io.SEEK_END)
        assert f.read() == data[-30:]
        assert len(decoded) == 2
        f.seek(0)
        assert f.read() == data


def test_concatenated_or_padded_files_fall_back_to_sequential_reading(multi, english):
    data, packed = multi
    more = nc.compress(english[:40], **SMALL)
    assert random_access.read_index(io.BytesIO(packed + more)) is None
    with nc.open(io.BytesIO(packed + more)) as f:
        assert f.read() == data + english[:40]
