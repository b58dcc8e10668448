"""Shared fixtures.  Every round trip runs the real SmolLM2-135M through llama.cpp;
inputs are small and the window short so that the suite stays fast and the
sliding window, stream splitting and block boundaries all run."""

import pathlib

import pytest

FIXTURES = pathlib.Path(__file__).resolve().parent.parent / "fixtures"

#: Small coding parameters: 2 streams of >= 16 tokens, 48-token windows.
SMALL = dict(streams=2, min_stream_tokens=16, window=48, slide=16)


def forge_first_block(packed: bytes, mutate) -> bytes:
    """Re-pack a stream's first block record after ``mutate`` (Block -> Block), with a
    valid CRC: damage only the content checks can catch."""
    from nacrith_codec import container
    header, pos = container.parse_header(packed)
    block, end = container.parse_record(packed, pos, header, 0)
    f = mutate(block)
    record = container.pack_segmented(f.raw_len, f.segments, f.digest, f.coded, f.counts, f.payload)
    return packed[:pos] + record + packed[end:]


@pytest.fixture(scope="session")
def alice() -> bytes:
    return (FIXTURES / "alice29.txt").read_bytes()


@pytest.fixture(scope="session")
def english(alice) -> bytes:
    """About 120 tokens of prose from the middle of the book."""
    start = alice.index(b"Alice was beginning")
    return alice[start:start + 500]


@pytest.fixture(scope="session")
def other_model(tmp_path_factory):
    """A real, different model: the bundled weights requantized to Q4_0."""
    import llama_cpp

    from nacrith_codec.model_file import default_model_path

    out = tmp_path_factory.mktemp("model") / "smollm2-q4_0.gguf"
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_0
    params.allow_requantize = True
    rc = llama_cpp.llama_model_quantize(str(default_model_path()).encode(), str(out).encode(),
                                        params)
    assert rc == 0
    return out
