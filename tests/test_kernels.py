"""The compiled kernels (numerics/kernels.py) give numpy's bits: the engine's reference
operations (reference.halves, joined and Linear's scaling) against the kernels, and small
seeded networks of both architectures computed with the kernels (8-bit products) and with
numpy's reference operations (float32 products), through slides of the window, local
layers, late streams and prefills; here and in a subprocess whose numba compiles for a
generic CPU (no AVX, no FMA to contract into).  The real models' proof (every golden
stream re-encoded, logits against int64 products) is in test_exact.py and test_golden.py."""

import dataclasses
import os
import subprocess
import sys

import numpy as np
import pytest

from nacrith_codec.engines.exact import context, network, reference, weights
from nacrith_codec.numerics import kernels, tables
from nacrith_codec.numerics.int8 import OFFSET, BoundsError


def _reference(q, raw, offset, xs, scale):
    """What reference.py computes, op by op in numpy."""
    split = (reference.halves(q, 0) + np.float32(OFFSET)).astype(np.uint8)
    joined = reference.joined(raw - offset, 0)
    return split, (joined * xs[:, None]) * scale[None, :]


def _operands(seed, m=9, k=640, n=300):
    rng = np.random.default_rng(seed)
    q = rng.integers(-8191, 8192, size=(m, k)).astype(np.float32)
    q[0, :8] = [8191, -8191, 64, -64, 192, -192, 0, 8128]  # the extremes and rint's ties
    raw = rng.integers(-(1 << 24), 1 << 24, size=(2 * m, n)).astype(np.int32)
    offset = rng.integers(0, 64 * 127 * k, size=n).astype(np.int32)
    xs = rng.random(m) * 10.0 ** rng.integers(-12, 4, size=m)
    scale = rng.random(n) / 127
    return q, raw, offset, xs, scale


@pytest.mark.parametrize("seed", range(3))
def test_kernels_give_the_numpy_operations_bits(seed):
    q, raw, offset, xs, scale = _operands(seed)
    split, out = _reference(q, raw, offset, xs, scale)
    assert np.array_equal(kernels.split_rows(q), split)
    got = kernels.join_scaled(raw, offset, xs, scale)
    assert got.view(np.uint64).tolist() == out.view(np.uint64).tolist()
    # the output layer's logits, rounded once into float32 as astype rounds them
    rounded = kernels.join_scaled(raw, offset, xs, scale, np.float32)
    assert rounded.dtype == np.float32 and rounded.tobytes() == out.astype(np.float32).tobytes()


def test_gemmas_float64_norm_gives_the_references_bits():
    """kernels.normed against Reference.normed on rows of every scale, a row of zeros and
    rows whose integers hit rint's ties, heads as Gemma's (N, heads, head_dim)."""
    rng = np.random.default_rng(5)
    x = rng.normal(size=(7, 4, 256)) * 10.0 ** rng.integers(-30, 30, size=(7, 4, 1))
    x[0, 0] = 0.0
    x[0, 1, :4] = [1.0, -1.0, 0.5 / 32767, 1.5 / 32767]
    gain = rng.normal(size=256).astype(np.float32)
    for eps in (1e-6, 9.999999747378752e-06):
        want = reference.Reference().normed(x, gain, eps)
        got = kernels.normed(x[:, :, :], gain, eps)
        assert got.shape == x.shape and got.tobytes() == want.tobytes()
        sliced = x[:, 1:3]  # not contiguous, as Gemma's queries are
        assert kernels.normed(sliced, gain, eps).tobytes() == \
            reference.Reference().normed(sliced, gain, eps).tobytes()


def test_rows_outside_the_bounds_are_refused():
    for bad in (8192, -8192, 0.5, np.nan, np.inf):
        q = np.zeros((2, 4), np.float32)
        q[1, 2] = bad
        with pytest.raises(BoundsError):
            kernels.split_rows(q)


def _exp2_and_gates_agree() -> bool:
    """exp2 over its whole domain (subnormal results and t just below 0 too) and the gated
    feed-forward of both architectures at extreme values: the kernels against numpy."""
    t = -np.concatenate([np.linspace(0.0, 1100.0, 20001), np.linspace(1020.0, 1080.0, 6001),
                         [1e-300, 2.0 ** -54, 2.0 ** -53, 5e-324, 1074.5, 1075.0, 1076.0]])
    exp2 = kernels._kernels["_gated_split"] and kernels._exp2  # compiled with the kernels
    if np.array([exp2(x, *tables.exp2_table()) for x in t]).tobytes() != tables.exp2(t).tobytes():
        return False
    gu = np.random.default_rng(0).normal(size=(3, 200)) * 4
    gu[0, :12] = [-800, -745, -744.5, 700, 0.0, -0.0, 1e-300, -1e-300, 40, -40, 1e-17, -2e-17]
    for arch in ("llama", "gemma3"):
        q, xs = reference.quantize(reference.activation(arch, gu[:, :100]) * gu[:, 100:])
        rows, got = kernels.gated_split(gu, 100, arch == "gemma3")
        if not np.array_equal(rows, kernels.split_rows(q)) or got.tobytes() != xs.tobytes():
            return False
    return True


def test_exp2_and_the_gated_feed_forward_give_numpys_bits():
    assert _exp2_and_gates_agree()


def test_exp2_just_below_zero_is_one():
    """t - floor(t) rounds to 1.0 there: the table's last point (it once indexed past it)."""
    assert tables.exp2(np.array([-1e-300, -(2.0 ** -54)])).tolist() == [1.0, 1.0]


#: Small networks of both architectures with the real models' heads and RoPE bases (their
#: tables): Gemma's with local layers of 5 positions, every second layer global.
SHAPES = {
    "llama": dataclasses.replace(weights.SMOLLM2, layers=2, embd=128, ffn=256, heads=4,
                                 kv_heads=2, vocab=512),
    "gemma3": weights.Shape(layers=2, embd=128, ffn=256, heads=2, kv_heads=1, head_dim=256,
                            vocab=512, rope_base=1e6, eps=1e-6, context=8192, arch="gemma3",
                            local_window=5, global_every=2, local_rope_base=10000.0),
}


def _run(arch: str, products: str, seed: int = 0) -> list:
    """Logits and hidden states of every step of a seeded network: 3 streams in a window of
    16 that slides by 12 behind a sink of 1 (so a local layer's row at slot 4 may sit at
    position 20), stream 1 joining late and stream 2 sitting out
    every third step, then every stream fed a prefill of 5 tokens at once."""
    arrays, meta = weights.seeded(SHAPES[arch], seed)
    net = network.Network(arrays, meta, products=products)
    assert net.ops.products == products
    ctx = context.Context(net, 3, window=16, slide=12, sink=1, pending=5, own_slots=True,
                          threads=1)
    rng = np.random.default_rng(seed)
    out = []
    for t in range(40):
        rows = [i for i in range(3) if not (i == 1 and t < 6) and not (i == 2 and t % 3 == 2)]
        for i in rows:
            ctx.waiting[i, 0], ctx.pending[i] = rng.integers(net.n_vocab), 1
        out += [ctx.step(rows).copy(), ctx.hidden.copy()]
    for i in range(3):
        ctx.pending[i] = k = min(5, ctx.room(i))
        ctx.waiting[i, :k] = rng.integers(net.n_vocab, size=k)
    out += [ctx.step([0, 1, 2], every=True).copy(), ctx.hidden.copy()]
    return out


def _same_networks(arch: str) -> bool:
    kernels_run, reference = _run(arch, "int8"), _run(arch, "float32")
    return all(a.tobytes() == b.tobytes() for a, b in zip(kernels_run, reference))


@pytest.mark.parametrize("arch", sorted(SHAPES))
def test_networks_with_kernels_give_the_reference_operations_bits(arch):
    assert _same_networks(arch)


def test_a_kernel_that_rounded_differently_would_be_caught(monkeypatch):
    """The comparison can fail: the attention's weights rounded down instead of to nearest."""
    attend = kernels.attend

    def floored(*args):
        out = attend(*args)
        return out * (1 - 2.0 ** -52)
    monkeypatch.setattr(kernels, "attend", floored)
    assert not _same_networks("llama")


GENERIC = """
import sys, numpy as np
sys.path.insert(0, sys.argv[1])
import test_kernels as t
from nacrith_codec.numerics import kernels
for seed in range(3):
    q, raw, offset, xs, scale = t._operands(seed)
    split, out = t._reference(q, raw, offset, xs, scale)
    assert np.array_equal(kernels.split_rows(q), split)
    assert kernels.join_scaled(raw, offset, xs, scale).tobytes() == out.tobytes()
assert t._exp2_and_gates_agree()
for arch in t.SHAPES:
    assert t._same_networks(arch), arch
import numba
print(numba.config.CPU_NAME)
"""


def test_kernels_compiled_for_a_generic_cpu_give_the_same_bits(tmp_path):
    r = subprocess.run([sys.executable, "-c", GENERIC, os.path.dirname(__file__)],
                       env={**os.environ, "NUMBA_CPU_NAME": "generic",
                            "NUMBA_CACHE_DIR": str(tmp_path)},
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split() == ["generic"]


def test_without_numba_the_network_computes_with_the_reference(monkeypatch):
    """The compiled arithmetic needs numba as well as onnxruntime; without it the network
    takes the reference's (the same bits), rather than failing at its first step."""
    import sys
    arrays, meta = weights.seeded(SHAPES["llama"])
    assert network.Network(arrays, meta).products == "int8"
    monkeypatch.setitem(sys.modules, "numba", None)  # import numba: ImportError
    net = network.Network(arrays, meta)
    assert net.products == "float32" and net.ops.products == "float32"


@pytest.mark.parametrize("case", ["random", "saturated"])
def test_attention_over_long_spans_gives_the_reference_bits(case):
    """Spans past the mixture's int32 runs (256 slots): random caches, and the largest sums
    the cache allows (every value 127, every weight 65,535: all scores equal)."""
    from nacrith_codec.engines.exact import device as devices
    from nacrith_codec.engines.exact.reference import Rows, attend
    rng = np.random.default_rng(1)
    streams, kv, group, hd, width = 3, 2, 3, 64, 1100
    shape = dataclasses.replace(weights.SMOLLM2, heads=kv * group, kv_heads=kv)
    if case == "random":
        keys = rng.integers(-127, 128, size=(streams, kv, hd, width), dtype=np.int8)
        values = rng.integers(-127, 128, size=(streams, kv, width, hd), dtype=np.int8)
        kscale, vscale = (rng.uniform(1e-3, 2e-2, size=(streams, kv, width)) for _ in "kv")
        q = rng.normal(size=(streams, kv * group, hd))
    else:
        keys = np.full((streams, kv, hd, width), 127, dtype=np.int8)
        values = np.full((streams, kv, width, hd), 127, dtype=np.int8)
        values[1] = -127
        kscale = vscale = np.full((streams, kv, width), 0.01)
        q = np.ones((streams, kv * group, hd))
    seq, slot = np.arange(streams), np.array([1099, 600, 257])
    pos = slot + 5
    at = Rows(seq, slot, pos, devices.CPU)
    cache = (keys, kscale, values, vscale)
    for window in (0, 300):
        want = attend(cache, q, at, shape, window, 0, True)
        got = kernels.attend(q, keys, kscale, values, vscale, seq, slot, pos, group,
                             1.0 / np.sqrt(hd), window, 0)
        assert got.tobytes() == want.tobytes()
