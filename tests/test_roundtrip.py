"""Round trips through the real model: every kind of input comes back exactly, on the
exact engine (``roundtrip``) and, for the front ends, on the llama.cpp engine that
every other test file uses."""

import random

import pytest

import nacrith_codec as nc
from nacrith_codec import container
from nacrith_codec.container.inspect import stream_info as describe
from conftest import EXACT_SMALL, SMALL


def roundtrip(data, **options):
    packed = nc.compress(data, **{**EXACT_SMALL, **options})
    assert nc.decompress(packed) == data
    return packed


def test_english_text_is_coded_by_the_model(english):
    packed = roundtrip(english)
    info = describe(packed)
    assert info["bytes_by_method"] == {"model": len(english)}
    assert info["trailing_bytes"] == 0
    # the model must beat a classical coder on prose, or something is broken
    import bz2
    overhead = len(nc.compress(b"", **EXACT_SMALL))  # header and end record
    assert len(packed) - overhead < len(bz2.compress(english, 9)) / 2


@pytest.mark.parametrize("data", [b"", b"a", b"\x00", bytes(range(256))], ids=["empty", "a", "nul", "all-bytes"])
def test_small_and_odd_inputs(data):
    roundtrip(data)


def test_random_bytes_are_stored_raw():
    data = random.Random(1).randbytes(700)
    info = describe(roundtrip(data))
    assert info["bytes_by_method"] == {"raw": 700} and info["tokens"] == 0


def test_bytes_the_vocabulary_lacks_are_escaped(english):
    # 0x04 0x06 0x13 0x14 0x16 0x1D have no token; lone 0xFF/0xC0 are invalid UTF-8
    salted = bytearray(english[:300])
    for i, b in enumerate([0x04, 0x06, 0x13, 0x14, 0x16, 0x1D, 0xFF, 0xC0, 0x80, 0xF1]):
        salted.insert(20 + 25 * i, b)
    info = describe(roundtrip(bytes(salted), **SMALL))  # tokenization: either engine
    assert info["bytes_by_method"] == {"model": len(salted)}  # one text region, escapes inside


def test_invalid_utf8_and_rare_code_points(english):
    data = english[:200] + b"\xed\xa0\x80 \xf1\x80\x80\x80 \xc3\x28 caf\xc3\xa9 \xf0\x9f\x98\x80" + english[200:260]
    assert describe(roundtrip(data, **SMALL))["bytes_by_method"]["model"] >= 250


def test_text_longer_than_the_window_slides(english):
    # ~50 tokens in one stream with a 24-token window: the cache slides 4+ times
    packed = roundtrip(english[:200], streams=1, window=24, slide=8)
    assert describe(packed)["config"]["window"] == 24


def test_several_blocks_and_streams(alice):
    data = alice[5000:5600]
    packed = roundtrip(data, block_size=200, streams=3, min_stream_tokens=8)
    info = describe(packed)
    assert info["blocks"] == 3
    assert info["original_size"] == len(data)


def test_parameters_are_recorded_in_the_stream(english):
    packed = nc.compress(english[:100], streams=3, window=40, slide=10, block_size=1000)
    header, _ = container.parse_header(packed)
    assert (header.config.streams, header.config.window, header.config.slide,
            header.config.block_size) == (3, 40, 10, 1000)
    assert header.content_size == 100
    # the decoder takes them from the stream, not from its own defaults
    assert nc.decompress(packed) == english[:100]


def test_concatenated_streams(english):
    a, b = english[:60], english[60:130]
    assert nc.decompress(nc.compress(a, **SMALL) + nc.compress(b, **SMALL)) == a + b


def test_file_api_binary_and_text(tmp_path, english):
    path = tmp_path / "x.nc"
    with nc.open(path, "wb", **SMALL) as f:
        f.write(english[:150])
        f.write(english[150:300])
    with nc.open(path, "rb") as f:
        assert f.read(10) == english[:10]
        f.seek(100)
        assert f.read() == english[100:300]
    with nc.open(path, "rt", encoding="utf-8", newline="") as f:
        assert f.read() == english[:300].decode()
    with nc.open(tmp_path / "t.nc", "wt", encoding="utf-8", **SMALL) as f:
        f.write("héllo\n")
    assert nc.decompress((tmp_path / "t.nc").read_bytes()) == "héllo\n".encode()
