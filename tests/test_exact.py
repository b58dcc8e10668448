"""The exact engine (format version 6): the same logits, probabilities and streams on
every machine, for the bundled SmolLM2 and for Gemma 3 270M.

What can change on one machine is changed here: numpy's SIMD dispatch, OpenBLAS's
kernel and thread count, and llama.cpp's presence, each in a real subprocess that
decodes (and once re-encodes) a stream written with the exact engine's defaults.  An int64
evaluation of the same network, which uses no BLAS, gives bit-identical logits, so
the float products are exact and not merely reproducible here.  A stream's logits do
not depend on which other streams share its steps.
"""

import dataclasses
import os
import platform
import subprocess
import sys

import numpy as np
import pytest

import nacrith_codec as nc
from nacrith_codec import container
from nacrith_codec.segments import classical
from nacrith_codec.engines import Engine
from nacrith_codec.errors import NacrithError
from nacrith_codec.engines import llamacpp
from nacrith_codec.engines.exact import context, network, quants, reference, weights
from nacrith_codec.numerics import tables
from nacrith_codec.predictions import arith
from nacrith_codec.engines.model_file import resolve_model_path
from conftest import GEMMA, needs_gemma

WINDOW = dict(window=32, slide=8, sink=1)  # small enough that streams slide in a test
#: Gemma's local layers see their last 512 positions; in these tests' 32-slot windows,
#: the same network with a local window of 12 shows that rule at work (slides included)
LOCAL_WINDOW = 12
MODELS = ["smollm2-135m", pytest.param(GEMMA, marks=needs_gemma)]
_networks = {}


@pytest.fixture(scope="module", params=MODELS)
def exact(request):
    return Engine.get(resolve_model_path(request.param), kind="exact")


def _network(engine, products=None):
    """The engine's network (its weight products: ``products``, else the CPU's default,
    8-bit), for Gemma with local layers of LOCAL_WINDOW positions."""
    net = engine.model.network
    if net.shape.arch != "gemma3" and products in (None, net.products):
        return net
    if (engine, products) not in _networks:
        arrays, meta = weights.load(engine.model.path)
        shape = dataclasses.replace(net.shape, local_window=LOCAL_WINDOW
                                    if net.shape.arch == "gemma3" else 0)
        _networks[engine, products] = network.Network(
            arrays, {**meta, "shape": dataclasses.asdict(shape)}, products=products)
    return _networks[engine, products]


def _logits(engine, feeds, streams=1, rows=None, products=None):
    """Logits of each step: ``feeds`` is a list of steps, each a list of (stream, token)."""
    ctx = context.Context(_network(engine, products), streams, **WINDOW)
    out = []
    for step in feeds:
        ctx.push(np.zeros(0, np.int32))
        for stream, token in step:
            ctx.waiting[stream, 0], ctx.pending[stream] = token, 1
        logits = ctx.step([stream for stream, _ in step])
        out.append({stream: logits[i].copy() for i, (stream, _) in enumerate(step)})
    return out


def _tokens(engine, english, n=40):
    return [engine.model.bos] + engine.tokenizer.tokenize(english)[:n - 1].tolist()


#: Logits the int64 evaluation computes: every one of SmolLM2's; the first quarter of
#: Gemma's 262,144 (numpy's integer loop takes seconds per step for the whole output layer)
INTEGER_COLUMNS = 1 << 16


def test_products_equal_an_integer_evaluation_bit_for_bit(exact, english, monkeypatch):
    """The first steps of real text: the CPU's 8-bit weight products (onnxruntime) and
    BLAS float32 products against int64 ones (no BLAS, no onnxruntime), one token at a time
    and in chunks of 4 (a stream's rows against its slots in place)."""
    tokens = _tokens(exact, english, 6)
    feeds = [[(0, t)] for t in tokens]
    assert _network(exact).products == "int8"  # the CPU's default where onnxruntime imports
    fast = _logits(exact, feeds)
    floats = _logits(exact, feeds, products="float32")
    largest = []

    def integer_product(a, b):
        cols = min(b.shape[-1], INTEGER_COLUMNS)
        a64, b64 = a.astype(np.int64), b[..., :cols].astype(np.int64)
        assert np.array_equal(a64, a) and np.array_equal(b64, b[..., :cols]), "not integers"
        out = np.full(a.shape[:-1] + b.shape[-1:], np.nan, dtype=np.float32)  # never compared
        out[..., :cols] = np.matmul(a64, b64)  # numpy's integer loop: no BLAS, exact
        largest.append(int(np.abs(out[..., :cols]).max()))
        return out

    monkeypatch.setattr(reference, "product", integer_product)
    slow = _logits(exact, feeds, products="float32")
    chunked, _ = _chunked(exact, [tokens], [4])
    assert max(largest) < 1 << 24  # every sum exact in float32, as the bounds promise
    for a, f, b, c in zip(fast, floats, slow, chunked[0]):
        a, f, b = (x[0][:INTEGER_COLUMNS] for x in (a, f, b))
        assert a.view(np.uint32).tolist() == b.view(np.uint32).tolist()
        assert f.view(np.uint32).tolist() == b.view(np.uint32).tolist()
        assert a.view(np.uint32).tolist() == c[:INTEGER_COLUMNS].view(np.uint32).tolist()


def test_a_streams_logits_do_not_depend_on_what_shares_its_steps(exact, english, alice):
    """Alone, or beside two other streams (one started earlier, one fed other text), with
    windows that slide: the same bits.  Rows of a step are computed independently."""
    mine = _tokens(exact, english, 44)
    other = _tokens(exact, alice[:2000], 50)
    alone = _logits(exact, [[(0, t)] for t in mine])
    together = [[(0, other[i])] for i in range(6)]  # stream 0 runs ahead, then all three
    together += [[(0, other[6 + i]), (1, t), (2, other[-1 - i])] for i, t in enumerate(mine)]
    shared = _logits(exact, together, streams=3)[6:]
    for a, b in zip(alone, shared):
        assert a[0].view(np.uint32).tolist() == b[1].view(np.uint32).tolist()


def _chunked(engine, streams_tokens, sizes, seed=0):
    """Logits and hidden states of each stream's tokens fed in chunks (an encoder's
    prefill): each pass feeds every stream a chunk of a size drawn from ``sizes`` (within
    its room before a slide, so a chunk may also be the whole rest of the window), all
    streams in the same pass, each its own size; stream i starts i * 5 tokens late."""
    rng = np.random.default_rng(seed)
    n = len(streams_tokens)
    ctx = context.Context(_network(engine), n, pending=64, own_slots=True, **WINDOW)
    done = [0] * n
    out = [[] for _ in range(n)]
    hidden = [[] for _ in range(n)]
    passes = 0
    while any(d < len(t) for d, t in zip(done, streams_tokens)):
        rows = []
        for i, tokens in enumerate(streams_tokens):
            if done[i] >= len(tokens) or passes < 2 * i:
                continue
            k = min(int(rng.choice(sizes)), ctx.room(i), len(tokens) - done[i])
            ctx.waiting[i, :k] = tokens[done[i]:done[i] + k]
            ctx.pending[i] = k
            rows.append((i, k))
        logits = ctx.step([i for i, _ in rows], every=True)
        at = 0
        for i, k in rows:
            out[i] += [logits[at + j].copy() for j in range(k)]
            hidden[i] += [ctx.hidden[at + j].copy() for j in range(k)]
            done[i] += k
            at += k
        passes += 1
    return out, hidden


def test_logits_of_chunks_of_any_size_are_the_one_token_steps_bit_for_bit(exact, english,
                                                                          alice):
    """An encoder computes a chunk of each stream in one pass (pipeline/schedule.py's
    run_prefilled); the decoder steps one token at a time.  Chunks of 1, 7, 64 tokens or the
    whole room before a slide, beside other streams at other slots fed chunks of other
    sizes in the same passes (as other blocks are), across slides of the window: the
    logits and hidden states are those of one-token steps, bit for bit."""
    mine = _tokens(exact, english, 44)
    others = [_tokens(exact, alice[:2000], 50), _tokens(exact, alice[5000:7000], 30)]
    ctx = context.Context(_network(exact), 1, **WINDOW)
    alone, alone_hidden = [], []
    for t in mine:
        ctx.waiting[0, 0], ctx.pending[0] = t, 1
        alone.append(ctx.step([0])[0].copy())
        alone_hidden.append(ctx.hidden[0].copy())
    schedules = [([1, 7, 64], 1), ([64], 2), ([7], 3)]
    if exact.model.network.shape.arch == "gemma3":  # 4x a step's time: the mixed one only
        schedules = schedules[:1]
    for sizes, seed in schedules:
        got, hidden = _chunked(exact, [mine] + others, sizes, seed)
        assert len(got[0]) == len(mine)
        for a, b, ha, hb in zip(alone, got[0], alone_hidden, hidden[0]):
            assert a.view(np.uint32).tolist() == b.view(np.uint32).tolist()
            assert ha.view(np.uint64).tolist() == hb.view(np.uint64).tolist()


@pytest.mark.parametrize("model", MODELS)
def test_the_exact_engines_pieces_and_values_are_the_files(model):
    """The vocabulary's bytes are llama.cpp's for every token (byte-level BPE or
    SentencePiece), and every block format decodes to the gguf package's values (its
    float32 rounding of the exact float64 ones)."""
    import gguf
    from gguf import quants as reference

    path = resolve_model_path(model)
    exact = Engine.get(path, kind="exact")
    assert exact.model.pieces == llamacpp.Model(path, vocab_only=True).pieces
    seen = set()
    for t in gguf.GGUFReader(str(path)).tensors:
        kind = t.tensor_type.name
        if kind in quants.FORMATS and kind not in seen:
            seen.add(kind)
            data = np.asarray(t.data)
            mine = quants.FORMATS[kind](data, int(t.shape[0]))
            theirs = reference.dequantize(data, t.tensor_type).reshape(mine.shape)
            assert np.array_equal(mine.astype(np.float32), theirs), (t.name, kind)
    assert seen == ({"Q4_1", "Q8_0"} if model != GEMMA else {"Q4_K", "Q5_0", "Q6_K", "Q8_0"})


@needs_gemma
def test_gemma_on_the_exact_engine_predicts_as_llama_cpp_does(alice):
    """The architecture is Gemma 3's (a wrong norm, rotation or activation costs far more
    than 3%): the model alone over the first 200 tokens of alice29 codes within 3% of
    llama.cpp's bits."""
    path = resolve_model_path(GEMMA)
    exact = Engine.get(path, kind="exact")
    tokens = [exact.model.bos] + exact.tokenizer.tokenize(alice[:1200]).tolist()[:200]

    def bits(logits, following):
        z = logits.astype(np.float64)
        z -= z.max(axis=1, keepdims=True)
        log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        return -log_p[np.arange(len(following)), following].sum() / np.log(2)

    ctx = context.Context(exact.model.network, 1, 256, 64, 1, pending=len(tokens) - 1)
    ctx.waiting[0, :len(tokens) - 1], ctx.pending[0] = tokens[:-1], len(tokens) - 1
    mine = bits(ctx.step([0], every=True), np.array(tokens[1:]))
    llama = llamacpp.Context(llamacpp.Model(path), 1, 256, 64, 1, None, 1, False)
    theirs = 0.0
    for token, following in zip(tokens[:-1], tokens[1:]):
        llama.push(np.array([token], dtype=np.int32))
        theirs += bits(llama.step([0]), np.array([following]))
    assert abs(mine / theirs - 1) < 0.03, (mine, theirs)


def test_tables_are_checked_and_close_to_the_functions_they_replace(monkeypatch):
    x = -np.linspace(0, 40, 20001)
    assert np.max(np.abs(tables.exp(x) / np.exp(x) - 1)) < 1e-7
    g = np.linspace(-30, 30, 6001)
    assert np.max(np.abs(tables.sigmoid(g) - 1 / (1 + np.exp(-g)))) < 1e-7
    p = np.array([0, 1, 7, 1000, 8191, 123457])
    c, s = tables.rotation(p, 100000.0, 64)
    angle = p[:, None] * 100000.0 ** (-np.arange(32) * 2 / 64)
    assert np.max(np.abs(c - np.cos(angle))) < 1e-9 and np.max(np.abs(s - np.sin(angle))) < 1e-9
    monkeypatch.setitem(tables.DIGESTS, "exp2", "0" * 16)
    tables._exp2_table.cache_clear()
    with pytest.raises(NacrithError, match="cannot be trusted"):
        tables.exp(x)
    monkeypatch.undo()
    tables._exp2_table.cache_clear()


def test_exact_softmax_of_a_row_is_the_same_alone_and_in_a_batch():
    rng = np.random.default_rng(1)
    rows = (rng.normal(size=(5, 4096)) * 6).astype(np.float32)
    batch = arith.softmax(rows.copy(), scale=0.75)
    for i in range(5):
        alone = arith.softmax(rows[i:i + 1].copy(), scale=0.75)
        assert alone[0].view(np.uint32).tolist() == batch[i].view(np.uint32).tolist()
    assert abs(float(batch.astype(np.float64).sum(axis=1).max()) - 0.75) < 1e-5


def _blas_probe() -> str:
    """Code that prints OpenBLAS's kernel in use, where numpy bundles scipy-openblas."""
    return ("import ctypes, glob, os, numpy\n"
            "libs = glob.glob(os.path.join(os.path.dirname(numpy.__path__[0]), 'numpy.libs', "
            "'libscipy_openblas*.so'))\n"
            "name = b'?'\n"
            "if libs:\n"
            "    f = getattr(ctypes.CDLL(libs[0]), 'scipy_openblas_get_corename64_', None)\n"
            "    if f is not None:\n"
            "        f.restype = ctypes.c_char_p; name = f()\n"
            "sys.stderr.write('BLAS ' + name.decode() + '\\n')\n")


NO_LLAMA = "import sys; sys.modules['llama_cpp'] = None\n"  # import llama_cpp now fails
DECODE = ("import sys, nacrith_codec as nc\n" + _blas_probe()
          + "sys.stdout.buffer.write(nc.decompress(sys.stdin.buffer.read()))\n")
ENCODE = ("import sys, nacrith_codec as nc\n" + _blas_probe()
          + "sys.stdout.buffer.write(nc.compress(sys.stdin.buffer.read(), engine='exact', "
            "model=sys.argv[1]))\n")


def _variations():
    """(name, environment changes, program) for what this machine can change (the decoder
    takes the model its stream names)."""
    out = [("llama.cpp unimportable, 1 BLAS thread",
            {"OPENBLAS_NUM_THREADS": "1"}, NO_LLAMA + DECODE)]
    if platform.machine() in ("x86_64", "AMD64"):
        out[0] = ("numpy without AVX2/AVX-512 kernels, 1 BLAS thread, llama.cpp unimportable",
                  {"OPENBLAS_NUM_THREADS": "1",
                   "NPY_DISABLE_CPU_FEATURES": "X86_V3 X86_V4 AVX512_ICL AVX512_SPR"},
                  NO_LLAMA + DECODE)
        for core in ("Haswell", "Sandybridge"):
            out.append((f"OpenBLAS {core} kernels, 2 threads, numba for a generic CPU",
                        {"OPENBLAS_CORETYPE": core, "OPENBLAS_NUM_THREADS": "2",
                         "NUMBA_CPU_NAME": "generic"}, DECODE))
        out.append(("OpenBLAS Prescott kernels, numpy baseline: encoding again",
                    {"OPENBLAS_CORETYPE": "Prescott",
                     "NPY_DISABLE_CPU_FEATURES": "X86_V3 X86_V4 AVX512_ICL AVX512_SPR"}, ENCODE))
    return out


@pytest.mark.parametrize("model", MODELS)
def test_an_exact_stream_decodes_identically_wherever_arithmetic_could_differ(english, model):
    data = english[:160]
    packed = nc.compress(data, engine="exact", model=model)
    header = container.parse_header(packed)[0]
    assert header.config.engine == "exact" and header.env == {}
    cores = set()
    for name, changes, program in _variations():
        r = subprocess.run([sys.executable, "-c", program, model], input=data if program is ENCODE
                           else packed, capture_output=True, env={**os.environ, **changes},
                           timeout=600)
        assert r.returncode == 0, f"{name}: {r.stderr.decode()[-2000:]}"
        assert r.stdout == (packed if program is ENCODE else data), name
        cores.add(r.stderr.decode().split("BLAS ")[-1].split()[0])
    if platform.machine() in ("x86_64", "AMD64") and "?" not in cores:
        assert len(cores) >= 3, cores  # the kernels really changed


FRAMING = 80  # header (21 bytes), a block's record (about 21), END (20), footer (8)


def test_a_stream_needs_little_beyond_its_best_classical_coding():
    """A default stream (the exact engine's) holds no environment in its header: an empty
    input is at most 64 bytes in all, random bytes grow by at most 64 bytes and a
    thousandth, and a one-block stream is at most FRAMING bytes more than the best
    classical payload."""
    empty = nc.compress(b"")
    assert len(empty) <= 64 and container.parse_header(empty)[0].config.engine == "exact"
    noise = np.random.default_rng(64).bytes(64 << 10)
    packed = nc.compress(noise)
    assert len(packed) <= len(noise) + 64 + len(noise) // 1000
    assert nc.decompress(packed) == noise
    for data in (b"The quick brown fox jumps over the lazy dog.", os.urandom(3000)):
        best = min(len(classical.compress(m, data)) for m in classical.CODECS)
        packed = nc.compress(data)
        assert len(packed) <= FRAMING + 1.001 * min(best, len(data)), data[:20]


def test_the_default_engine_is_exact_and_each_engine_splits_blocks_its_way():
    """The exact engine is the default everywhere a CodecConfig is made; it takes a second
    stream from 768 tokens (2 x 384), llama.cpp from 1,024 (2 x 512), unless a stream
    length is given, and the header records the choice."""
    from nacrith_codec.config import CodecConfig
    from nacrith_codec.pipeline import schedule
    exact, llama = CodecConfig(), CodecConfig(engine="llama.cpp")
    assert exact.engine == "exact" and (exact.min_stream_tokens, llama.min_stream_tokens) == (384, 512)
    assert exact.replace(engine="llama.cpp") == llama and llama.replace(engine="exact") == exact
    assert exact.replace(min_stream_tokens=100).replace(engine="llama.cpp").min_stream_tokens == 100
    assert CodecConfig(engine="llama.cpp", min_stream_tokens=384).min_stream_tokens == 384
    assert (schedule.split(966, exact), schedule.split(966, llama)) == ([483, 483], [966])
    assert schedule.split(767, exact) == [767]
    for config in (exact, llama):
        packed = nc.compress(b"x", engine=config.engine)  # (an empty stream records none)
        assert container.parse_header(packed)[0].config == config


def test_streams_of_other_engines_record_it(english):
    packed = nc.compress(english[:60], engine="llama.cpp", streams=1)
    header = container.parse_header(packed)[0]
    assert header.config.engine == "llama.cpp" and "cpu" in header.env
    assert nc.decompress(packed) == english[:60]
