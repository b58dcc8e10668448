"""Streams written by earlier versions decode forever (see fixtures/make_golden.py).

The streams of the exact engine (version 6, v6-* but v6-llama) decode to their
original bytes on every machine: nothing else is allowed.  The streams of the
llama.cpp engine (versions 1-5 and v6-llama), whose logits depend on the llama.cpp
build and numpy's kernels, must decode to their original bytes wherever the
environment matches the writer's, and anywhere else decode to their original bytes
or raise EnvironmentMismatchError naming what differs: never wrong bytes, another
error, or a failure where everything the stream's arithmetic depends on is the same.
"""


import pytest

import nacrith_codec as nc
from conftest import FIXTURES
from nacrith_codec import container
from nacrith_codec.engines import environment

GOLDEN = sorted((FIXTURES / "golden").glob("*.nc"))


def test_every_readable_version_has_golden_streams():
    from nacrith_codec.container import READABLE
    versions = {int(p.stem.split("-")[0][1:]) for p in GOLDEN}
    assert versions == set(READABLE)


@pytest.mark.parametrize("stream", GOLDEN, ids=[p.stem for p in GOLDEN])
def test_golden_stream_decodes_or_names_the_environment(stream):
    packed, original = stream.read_bytes(), stream.with_suffix(".bin").read_bytes()
    try:
        decoded = nc.decompress(packed)
    except nc.EnvironmentMismatchError as exc:
        header = container.parse_header(packed)[0]
        assert header.config.engine == "llama.cpp", "an exact stream must decode anywhere"
        writer = header.env
        here = environment(0, numpy=not header.config.exact)
        differ = sorted(k for k in set(writer) | set(here) if writer.get(k) != here.get(k))
        assert all(f"{k}: writer" in str(exc) for k in differ)
        # only what the stream's arithmetic depends on may explain a failure: llama.cpp's
        # build always, numpy's kernels only for float32 predictors of versions 4 and 5
        relevant = {"cpu", "llama_cpp_python", "gpu_layers"}
        if header.config.float_bits == 32 and not header.config.exact:
            relevant |= {"numpy", "numpy_simd"}
        assert relevant & set(differ), f"failed although {sorted(relevant)} match: {exc}"
        return
    assert decoded == original


@pytest.mark.parametrize("stream", GOLDEN, ids=[p.stem for p in GOLDEN])
def test_golden_stream_keeps_random_access(stream):
    """Every version's END record is found from the file's end (each layout of it)."""
    from nacrith_codec.random_access import read_index
    with open(stream, "rb") as f:
        index = read_index(f)
    assert index is not None and index.size == stream.with_suffix(".bin").stat().st_size


EXACT_GOLDEN = [p for p in GOLDEN if p.stem[:3] in ("v6-", "v7-", "v8-") and "llama" not in p.stem]


@pytest.mark.parametrize("stream", EXACT_GOLDEN, ids=[p.stem for p in EXACT_GOLDEN])
def test_an_exact_golden_stream_is_what_this_code_writes(stream):
    """The exact engine's streams are a function of the input and the header alone, on
    every machine: compressing a golden stream's original with its header's settings
    writes it again, byte for byte, in its format version (a change to the code that
    moves any bit fails here)."""
    packed, original = stream.read_bytes(), stream.with_suffix(".bin").read_bytes()
    header = container.parse_header(packed)[0]
    assert nc.compress(original, config=header.config, format_version=header.version) == packed
