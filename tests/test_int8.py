"""The exact 8-bit product (numerics/int8.py): the int64 product's integers at the bounds
and inside them, every operand outside them refused, and no thread of its own.

The model-level proof (8-bit weight products against float32 BLAS and int64 products,
bit for bit over real text, and every golden stream re-encoded) is in test_exact.py and
test_golden.py."""

import os

import numpy as np
import pytest

from nacrith_codec.engines.exact import compiled, reference
from nacrith_codec.numerics.int8 import BoundsError, Int8Matrix


def _int64(x, w):
    return np.matmul(x.astype(np.int64), w.astype(np.int64))


@pytest.mark.parametrize("k", [1, 64, 576, 1536, 2048])
def test_products_are_the_int64_products_at_and_inside_the_bounds(k):
    rng = np.random.default_rng(k)
    w = rng.integers(-127, 128, size=(k, 96))
    w[:, 0], w[:, 1] = 127, -127  # the extremes, and alternating ones
    w[0::2, 2], w[1::2, 2], w[0::2, 3], w[1::2, 3] = 127, -127, -127, 127
    matrix = Int8Matrix(w.astype(np.float32))
    for rows in (1, 2, 16, 65):
        x = rng.integers(-64, 65, size=(rows, k)).astype(np.float32)
        x[0], x[-1] = 64, -64  # uint8 128 and 0: the largest pairs AVX2 adds in int16
        if rows > 2:
            x[1, ::2], x[1, 1::2] = 64, -64
        got = matrix(x)
        assert got.dtype == np.int32
        assert np.array_equal(got, _int64(x, w))


def test_operands_outside_the_bounds_are_refused():
    w = np.zeros((8, 4), np.float32)
    Int8Matrix(w)
    for bad in (128, -128, 0.5, 300):
        with pytest.raises(BoundsError):
            Int8Matrix(np.full((8, 4), bad, np.float32))
    matrix = Int8Matrix(w)
    for bad in (65, -65, 0.5, 1e9):
        with pytest.raises(BoundsError):
            matrix(np.full((2, 8), bad, np.float32))


def test_a_linear_layer_gives_the_float32_products_bits():
    """The engine's Linear (14-bit rows as 7-bit halves, joined in float64, scaled) with
    8-bit and with float32 products: the same float64 bits."""
    rng = np.random.default_rng(1)
    q = rng.integers(-127, 128, size=(1536, 200)).astype(np.float32)
    scale = rng.random(200) / 127
    xq = rng.integers(-8191, 8192, size=(9, 1536)).astype(np.float32)
    xs = rng.random(9)
    eight, float32 = compiled.Linear(q, scale), reference.Linear(q, scale)
    assert eight(xq, xs).view(np.uint64).tolist() == float32(xq, xs).view(np.uint64).tolist()


def _threads() -> int:
    return len(os.listdir("/proc/self/task"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="needs Linux's /proc")
def test_products_run_on_the_callers_thread():
    """No thread pool: nothing spins while it waits, and a core taken by another process
    costs a share of the time, not a collapse (issue 37)."""
    before = _threads()
    matrix = Int8Matrix(np.ones((576, 960), np.float32))
    for _ in range(20):
        matrix(np.ones((16, 576), np.float32))
    assert _threads() == before


def test_the_products_bench_compares_both_on_the_model(capsys):
    from nacrith_codec.bench import products
    assert products.main(["--rows", "2", "--repeats", "1"]) == 0
    header, row = capsys.readouterr().out.splitlines()
    assert header.split() == ["rows", "float32", "ms", "8-bit", "ms", "ratio"]
    assert row.split()[0] == "2" and row.endswith("x")
