"""The incremental API behaves as lzma's: chunking never changes the bytes."""

import pytest

import nacrith_codec as nc
from conftest import SMALL


@pytest.fixture(scope="module")
def sample(english):
    data = english[:260]
    return data, nc.compress(data, **SMALL)


def test_compressor_fed_one_byte_at_a_time(sample):
    data, packed = sample
    c = nc.NacrithCompressor(content_size=len(data), **SMALL)
    out = b"".join(c.compress(data[i:i + 1]) for i in range(len(data))) + c.flush()
    assert out == packed
    with pytest.raises(ValueError):
        c.compress(b"more")


def test_decompressor_fed_one_byte_at_a_time_with_max_length(sample):
    data, packed = sample
    d = nc.NacrithDecompressor()
    out = bytearray()
    for i in range(len(packed)):
        out += d.decompress(packed[i:i + 1], max_length=7)
        while not d.needs_input and not d.eof:
            out += d.decompress(b"", max_length=7)
    assert bytes(out) == data and d.eof and d.unused_data == b""
    with pytest.raises(EOFError):
        d.decompress(b"x")


def test_unused_data_after_the_end(sample):
    data, packed = sample
    d = nc.NacrithDecompressor()
    assert d.decompress(packed + b"padding\x00\x00") == data
    assert d.eof and d.unused_data == b"padding\x00\x00"


def test_max_length_zero_and_needs_input(sample):
    data, packed = sample
    d = nc.NacrithDecompressor()
    assert d.decompress(packed[:10]) == b"" and d.needs_input
    assert d.decompress(packed[10:], max_length=0) == b""
    assert d.decompress(b"") == data and d.eof
