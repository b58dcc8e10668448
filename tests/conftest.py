"""Shared fixtures.  Every round trip runs the real SmolLM2-135M; inputs are small and
the window short so that the suite stays fast and the sliding window, stream
splitting and block boundaries all run.

The exact engine is tested by test_exact.py, the golden streams and the round trips
of test_roundtrip.py; the tests of framing, damage, front ends and plugins, which do
not depend on what computes the logits, code their inputs with ``SMALL`` on the
llama.cpp engine (the default): on two cores it runs a one- or two-stream step in
about a tenth of the exact engine's time (which reads its float32 weights, 537 MB,
once per step whatever the number of streams)."""

import pathlib

import pytest

FIXTURES = pathlib.Path(__file__).resolve().parent.parent / "fixtures"

#: Small coding parameters: 2 streams of >= 16 tokens, 48-token windows, llama.cpp.
SMALL = dict(streams=2, min_stream_tokens=16, window=48, slide=16, engine="llama.cpp")
#: The same on the exact engine.
EXACT_SMALL = {**SMALL, "engine": "exact"}


def stream_parts(packed: bytes):
    """(header, header bytes, [(Block, its record's bytes)], END record and footer bytes)
    of a one-stream ``packed``."""
    from nacrith_codec import container
    header, pos = container.parse_header(packed)
    head, blocks = packed[:pos], []
    while True:
        record, end = container.parse_record(packed, pos, header, len(blocks))
        if isinstance(record, container.End):
            return header, head, blocks, packed[pos:]
        blocks.append((record, packed[pos:end]))
        pos = end


def reframe(packed: bytes, header=None, mutate=lambda block: block) -> bytes:
    """A one-stream ``packed`` framed again by the codec's own writer, under ``header``
    (a container.Header; default its own) and with its first block after ``mutate``
    (Block -> Block): valid CRCs, bindings and END record, so that only the checks
    after them (content digests, the model, decoding) can catch what was changed."""
    from nacrith_codec import container
    own, _, blocks, _ = stream_parts(packed)
    writer = container.StreamWriter(header or own)
    out = [writer.head]
    for n, (block, _) in enumerate(blocks):
        f = mutate(block) if n == 0 else block
        out.append(writer.block(container.pack_segmented(
            f.raw_len, f.segments, f.digest, f.coded, f.counts, f.payload), f.raw_len))
    return b"".join(out) + writer.end()


def forge_first_block(packed: bytes, mutate) -> bytes:
    """A stream's first block record re-packed after ``mutate`` (Block -> Block), with
    valid CRCs: damage only the content checks can catch."""
    return reframe(packed, mutate=mutate)


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

    from nacrith_codec.engines.model_file import default_model_path

    out = tmp_path_factory.mktemp("model") / "smollm2-q4_0.gguf"
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_0
    params.allow_requantize = True
    rc = llama_cpp.llama_model_quantize(str(default_model_path()).encode(), str(out).encode(),
                                        params)
    assert rc == 0
    return out
