"""The compiled kernels (numerics/kernels.py) give numpy's bits: the engine's reference
operations (network.halves, joined and Linear's scaling) against the kernels, here and
in a subprocess whose numba compiles for a generic CPU (no AVX, no FMA to contract into).
The model-level proof (every golden stream re-encoded, logits against int64 products) is
in test_exact.py and test_golden.py."""

import os
import subprocess
import sys

import numpy as np
import pytest

from nacrith_codec.engines.exact import network
from nacrith_codec.numerics import kernels
from nacrith_codec.numerics.int8 import OFFSET, BoundsError


def _reference(q, raw, offset, xs, scale):
    """What network.py computes, op by op in numpy."""
    split = (network.halves(q, 0) + np.float32(OFFSET)).astype(np.uint8)
    joined = network.joined(raw - offset, 0)
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


def test_rows_outside_the_bounds_are_refused():
    for bad in (8192, -8192, 0.5, np.nan, np.inf):
        q = np.zeros((2, 4), np.float32)
        q[1, 2] = bad
        with pytest.raises(BoundsError):
            kernels.split_rows(q)


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
