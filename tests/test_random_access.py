"""Seeking in a stream decodes only the blocks a read overlaps."""

import io

import pytest

import nacrith_codec as nc
from nacrith_codec import random_access
from nacrith_codec.pipeline import block
from conftest import SMALL


@pytest.fixture(scope="module")
def multi(alice):
    data = alice[7000:8200]
    return data, nc.compress(data, block_size=300, **SMALL)


def test_index_from_both_ends(multi):
    data, packed = multi
    index = random_access.read_index(io.BytesIO(packed))
    assert index.size == len(data) and index.raw == (0, 300, 600, 900, 1200)
    assert index.offsets[0] == len(index.headers[0]) and index.ends[-1] < len(packed)
    assert index.offsets[1:] == index.ends[:-1]
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


def test_concatenated_streams_are_indexed_and_padded_files_read_sequentially(multi, english):
    data, packed = multi
    more = nc.compress(english[:40], **SMALL)
    index = random_access.read_index(io.BytesIO(packed + more))
    assert index.size == len(data) + 40 and index.stream == (0, 0, 0, 0, 1)
    assert index.headers[1] == more[:len(index.headers[1])]
    with nc.open(io.BytesIO(packed + more)) as f:
        f.seek(len(data) - 5)
        assert f.read(10) == (data + english[:40])[len(data) - 5:len(data) + 5]
        f.seek(0)
        assert f.read() == data + english[:40]
    padded = packed + more + bytes(16)
    assert random_access.read_index(io.BytesIO(padded)) is None
    with pytest.raises(nc.FormatError, match="trailing data after the end of stream 2"):
        nc.open(io.BytesIO(padded)).read()


def test_a_damaged_block_read_alone_names_its_offset_in_the_file(multi):
    data, packed = multi
    index = random_access.read_index(io.BytesIO(packed))
    at = index.offsets[2]
    damaged = bytearray(packed)
    damaged[(at + index.ends[2]) // 2] ^= 0x10
    with pytest.raises(nc.CorruptError) as whole:
        nc.decompress(bytes(damaged))
    with nc.open(io.BytesIO(bytes(damaged))) as f:
        f.seek(index.raw[2] + 5)
        with pytest.raises(nc.CorruptError) as alone:
            f.read(10)
    assert f"at offset {at}" in str(whole.value)
    assert str(alone.value) == str(whole.value)
