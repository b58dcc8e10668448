"""Small inputs (format version 8): an empty input is a stream of at most 32 bytes, and
every stream's header at most 64, on every engine, level and named model; older versions
are written on request, for readers of older releases."""

import io

import pytest

import nacrith_codec as nc
from nacrith_codec import api, container
from nacrith_codec.config import ENGINES, CodecConfig
from nacrith_codec.container import header as headers
from nacrith_codec.container.inspect import stream_info
from nacrith_codec.engines import environment
from nacrith_codec.engines.model_file import DEFAULT_NAME, MODELS
from nacrith_codec.presets import LEVELS, apply
from nacrith_codec.random_access import read_index
from conftest import SMALL


@pytest.mark.parametrize("engine", ENGINES)
def test_an_empty_input_is_a_stream_of_at_most_32_bytes(engine):
    c = nc.NacrithCompressor(engine=engine)  # the defaults, as a user would
    for packed in (nc.compress(b"", engine=engine), c.compress(b"") + c.flush()):
        assert len(packed) <= 32 and nc.decompress(packed) == b""
    assert stream_info(packed)["model"].startswith("none") and stream_info(packed)["blocks"] == 0
    assert read_index(io.BytesIO(packed * 2)).size == 0  # found from the end, twice
    assert nc.decompress(packed + nc.compress(b"after", **SMALL)) == b"after"


def test_every_level_engine_and_named_model_has_a_header_of_at_most_64_bytes():
    for engine in ENGINES:
        env = environment() if engine == "llama.cpp" else {}
        for level in LEVELS:
            model, options = apply(level, None, {"engine": engine})
            named = MODELS[model or DEFAULT_NAME]
            header = api.header_for(CodecConfig().replace(**options), named.sha256, named.file,
                                    env, content_size=1 << 40)
            assert len(headers.pack_header(header)) <= 64, (engine, level)
            assert headers.parse_header(headers.pack_header(header))[0].env == env


@pytest.mark.parametrize("engine", ENGINES)
def test_a_real_stream_of_each_engine_has_a_small_header(engine, english):
    packed = nc.compress(english[:200], **{**SMALL, "engine": engine})
    header, end = container.parse_header(packed)
    assert end <= 64 and header.version == headers.VERSION == 8
    assert nc.decompress(packed) == english[:200]


def test_the_environment_is_written_compactly_and_read_back_exactly():
    config = CodecConfig(engine="llama.cpp")
    for env in ({"cpu": "SSE3,AVX2,SOMETHING_NEW,OPENMP", "llama_cpp_python": "0.3.36"},
                {"cpu": "", "llama_cpp_python": "9", "gpu_layers": 12},
                {"cpu": "AVX2", "llama_cpp_python": "0.3.36", "numpy": "2.4"}):  # as JSON
        h = container.Header(config, bytes(8), "", env, 5)
        packed = headers.pack_header(h)
        assert headers.parse_header(packed)[0].env == env
    compact = headers.pack_header(container.Header(config, bytes(8), "", environment(), 5))
    assert len(compact) < 45


def _reheader(body: bytes) -> bytes:
    import zlib
    from nacrith_codec.container.fields import varint
    head = bytes([8]) + varint(len(body)) + body
    return b"NACR" + head + zlib.crc32(head).to_bytes(4, "little")


@pytest.mark.parametrize("body, message", [
    (bytes([16 | 1]), "empty stream's header"),  # the empty flag with another
    (bytes([16, 0]), "do not fill"),  # a byte beyond the fields
    (bytes([4]) + bytes(8) + b"\x00" + b"\x01\x7e\x00\x00", "unknown CPU feature"),
    (bytes([0]) + bytes(8) + b"\xff\xff\x03", "field mask"),
    (bytes([4 | 32]) + bytes(8) + b"\x00", "environment twice"),
])
def test_a_damaged_lean_header_is_refused(body, message):
    with pytest.raises(nc.CorruptError, match=message):
        container.parse_header(_reheader(body))


def test_older_versions_are_written_on_request(english):
    data = english[:150]
    for version in (6, 7, 8):
        options = dict(SMALL, cache_size=0) if version == 6 else SMALL
        packed = nc.compress(data, format_version=version, **options)
        assert container.parse_header(packed)[0].version == version
        assert nc.decompress(packed) == data
    assert container.parse_header(nc.compress(b"", format_version=7))[0].version == 7
    for wrong, why in ((5, "must be one of 6, 7, 8"), (True, "must be one of"),
                       (6, "no neural cache")):
        with pytest.raises(ValueError, match=why):
            nc.NacrithCompressor(format_version=wrong)


def test_more_input_than_the_content_size_given_is_refused_before_it_is_written():
    c = nc.NacrithCompressor(content_size=0)
    with pytest.raises(ValueError, match="content_size was given as 0"):
        c.compress(b"abc")
    c = nc.NacrithCompressor(content_size=4, **SMALL)
    out = c.compress(b"abcd")
    with pytest.raises(ValueError, match="more bytes"):
        c.compress(b"e")
    assert nc.decompress(out + c.flush()) == b"abcd"
