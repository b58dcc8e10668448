"""Vocabulary-wide arithmetic of the ensemble, exact on every machine (format version 6).

What numpy leaves to the CPU (the SIMD kernels of ``exp``, the order of a
sum's additions) is fixed here: exp comes from a table of ``tables.exp`` on a grid, sums over the
vocabulary are sums of integers (exact in float64 in any order), and small
reductions over features, candidates or rows are written out in one order.
Versions 1-5 keep numpy's arithmetic (``legacy_*``), which their streams need.
"""

from __future__ import annotations

import functools

import numpy as np

from ..numerics import tables

EXP_ONE = float(1 << 36)  # a softmax's terms are integers up to 2**36: sums below 2**53
SOFTMAX_STEP = 4096  # the exponent's grid: terms are e**x for x rounded to 1/4096
#: e**-26 * 2**36 < 0.5: every term below is 0 (probabilities under about 1e-11, below
#: the range coder's smallest frequency of 2**-24 anyway, which every symbol keeps)
_SOFTMAX_SPAN = 26 * SOFTMAX_STEP
P_ONE = 1 << 20  # fixed point of probabilities in an expectation
V_ONE = 1 << 12  # and of the values (|values| < 2**19: every partial sum below 2**52)


@functools.lru_cache(maxsize=None)
def _terms() -> np.ndarray:
    grid = -np.arange(_SOFTMAX_SPAN + 1, dtype=np.float64) / SOFTMAX_STEP
    table = np.rint(tables.exp(grid) * EXP_ONE)
    table[-1] = 0.0
    return table


def softmax(z: np.ndarray, never=None, scale=1.0) -> np.ndarray:
    """softmax of the rows of ``z`` times ``scale`` (a number or one per row), in place,
    tokens ``never`` set to 0; every operation correctly rounded, every sum exact."""
    if z.shape[1] * EXP_ONE >= 2.0 ** 53:
        raise ValueError(f"a softmax over {z.shape[1]} tokens would not sum exactly")
    x = z - z.max(axis=1, keepdims=True)  # <= 0, in z's precision
    index = np.minimum(x * -float(SOFTMAX_STEP), float(_SOFTMAX_SPAN))
    terms = _terms()[np.rint(index).astype(np.int32)]
    if never is not None:
        terms[:, never] = 0.0
    total = terms.sum(axis=1)  # integers below 2**53: exact whatever the order
    factor = (np.asarray(scale, dtype=np.float64) / total)[:, None]
    np.multiply(terms, factor, out=z, casting="unsafe")
    return z


def softmax_for(exact: int):
    """The softmax of a stream's arithmetic: exact (version 6) or numpy's (versions 1-5)."""
    return softmax if exact else legacy_softmax


def legacy_softmax(z: np.ndarray, never=None, scale=1.0) -> np.ndarray:
    """Versions 1-5: numpy's exp and sum."""
    z -= z.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    if never is not None:
        z[:, never] = 0.0
    z *= (scale / z.sum(axis=1))[:, None]  # a Python float keeps float32 rows float32
    return z


def expectation(probs: np.ndarray, values: np.ndarray) -> np.ndarray:
    """sum_v probs[s, v] * values[s, v] per row, in integers: probabilities to 2**-20,
    values to 2**-12 (|values| < 2**19).  Every product and partial sum is an integer
    below 2**52 (the probabilities sum to about 2**20), so float64 adds them exactly in
    any order."""
    p = np.rint(probs.astype(np.float64) * P_ONE)
    v = np.rint(np.clip(values.astype(np.float64), -(1 << 19), 1 << 19) * V_ONE)
    return np.einsum("sv,sv->s", p, v) / float(P_ONE * V_ONE)


def weighted(feat: np.ndarray, w: np.ndarray) -> np.ndarray:
    """sum_f feat[s, c, f] * w[s, f] -> (s, c), adding the features in order."""
    out = feat[:, :, 0] * w[:, None, 0]
    for f in range(1, feat.shape[2]):
        out = out + feat[:, :, f] * w[:, None, f]
    return out


def gradient(delta: np.ndarray, feat: np.ndarray) -> np.ndarray:
    """sum_c delta[s, c] * feat[s, c, f] -> (s, f), adding the candidates in order."""
    out = delta[:, 0, None] * feat[:, 0]
    for c in range(1, feat.shape[1]):
        out = out + delta[:, c, None] * feat[:, c]
    return out


def row_sum(rows: np.ndarray) -> np.ndarray:
    """The sum of a 2-D array's rows, added first to last."""
    out = rows[0].astype(np.float64)
    for row in rows[1:]:
        out = out + row
    return out
