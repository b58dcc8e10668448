"""Compiled elementwise work around the exact engine's 8-bit products (numba, CPU only).

Each kernel does in one pass what ``engines/exact/network.py`` does in several numpy
operations, with the same IEEE-754 operations in the same order, so the same bits:
numba compiles with ``fastmath=False`` (LLVM then contracts nothing into a fused
multiply-add and reorders no floating-point sum), every operation here is either exact
(integers and powers of two) or one correctly rounded multiplication, and nothing is
summed in floating point.  The numpy code stays the reference (tests/test_kernels.py
compares them bit for bit, also under ``NUMBA_CPU_NAME=generic``) and is what a GPU runs.

- ``split_rows``: 14-bit integer rows q (float32, |q| <= 8191) as the uint8 rows the
  8-bit product takes: ``high + 64`` then ``low + 64``, ``q = high * 128 + low`` with
  ``high = rint(q / 128)`` (so both halves in [-64, 64]); network.halves plus
  int8.OFFSET.
- ``join_scaled``: the 8-bit product of those rows, less its offset, joined and scaled:
  ``((high * 128 + low) * xs[row]) * scale[column]`` in float64; network.joined and
  Linear's two multiplications.

numba is imported and the kernels compiled on first use (about 0.5 s once, then read
from numba's cache: ``NUMBA_CACHE_DIR``, else beside this file or in the user's cache),
so a process that never runs the exact engine on the CPU does not pay for it.  They run
on the caller's thread (no ``parallel``: no thread pool).
"""

from __future__ import annotations

import numpy as np

from .int8 import OFFSET, ROW_LIMIT, BoundsError

#: The largest magnitude of a row split into two 7-bit halves (network.ACT_LEVELS).
SPLIT_LIMIT = 8191

_compiled = None


def _split_rows(q, out):
    m, k = q.shape
    ok = True
    for i in range(m):
        for j in range(k):
            v = q[i, j]
            if not (abs(v) <= 8191.0) or v != np.rint(v):  # NaN fails the first test
                ok = False
                v = np.float32(0.0)
            high = np.rint(v * np.float32(1.0 / 128))
            out[i, j] = np.uint8(high + np.float32(64.0))
            out[m + i, j] = np.uint8(v - high * np.float32(128.0) + np.float32(64.0))
    return ok


def _join_scaled(raw, offset, xs, scale, out):
    m, n = out.shape
    for i in range(m):
        x = xs[i]
        for j in range(n):
            high = np.float64(raw[i, j] - offset[j])
            low = np.float64(raw[m + i, j] - offset[j])
            out[i, j] = ((high * 128.0 + low) * x) * scale[j]


def _kernels():
    global _compiled
    if _compiled is None:
        import numba

        def jit(function):
            options = dict(fastmath=False, nogil=True, error_model="numpy")
            try:
                return numba.njit(cache=True, **options)(function)
            except RuntimeError:  # no writable cache location here: compile in memory
                return numba.njit(**options)(function)

        _compiled = jit(_split_rows), jit(_join_scaled)
    return _compiled


def split_rows(q: np.ndarray) -> np.ndarray:
    """(2M, K) uint8 rows, 0..128, for float32 integer rows ``q`` (M, K), |q| <= 8191."""
    q = np.ascontiguousarray(q, dtype=np.float32)
    out = np.empty((2 * q.shape[0], q.shape[1]), np.uint8)
    if not _kernels()[0](q, out):
        raise BoundsError(f"rows to split must be integers in [-{SPLIT_LIMIT}, {SPLIT_LIMIT}] "
                          f"(halves within [-{ROW_LIMIT}, {ROW_LIMIT}], +{OFFSET})")
    return out


def join_scaled(raw: np.ndarray, offset: np.ndarray, xs: np.ndarray,
                scale: np.ndarray) -> np.ndarray:
    """(M, N) float64: the int32 product ``raw`` (2M, N) of split rows, less ``offset`` (N,)
    per column, joined (high * 128 + low) and scaled by ``xs`` (M,) and ``scale`` (N,)."""
    out = np.empty((raw.shape[0] // 2, raw.shape[1]), np.float64)
    _kernels()[1](np.ascontiguousarray(raw), offset, np.ascontiguousarray(xs, np.float64),
                  np.ascontiguousarray(scale, np.float64), out)
    return out
