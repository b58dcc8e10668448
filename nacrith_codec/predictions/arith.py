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

EXP_BITS = 36  # a softmax's terms are integers up to 2**36 ...
SOFTMAX_STEP = 4096  # the exponent's grid: terms are e**x for x rounded to 1/4096
#: e**-26 * 2**36 < 0.5: every term below is 0 (probabilities under about 1e-11, below
#: the range coder's smallest frequency of 2**-24 anyway, which every symbol keeps)
SOFTMAX_SPAN = 26 * SOFTMAX_STEP
EXP_MIN = -26.0  # exp_terms is 0 at and below


def exp_bits(n: int) -> int:
    """... or fewer, so that a sum over ``n`` tokens stays below 2**53, exact in float64:
    36 for SmolLM2's 49,152 tokens (the terms of every stream written so far), 34 for
    Gemma's 262,144.  A vocabulary of 2**20 or more leaves too few bits for the terms."""
    bits = min(EXP_BITS, 52 - max(n - 1, 1).bit_length())
    if bits < 30:
        raise ValueError(f"a softmax over {n} tokens would not sum exactly")
    return bits


P_ONE = 1 << 20  # fixed point of probabilities in an expectation
V_ONE = 1 << 12  # and of the values (|values| < 2**19: every partial sum below 2**52)
VALUE_LIMIT = float(1 << 19)  # the values are clipped to +-VALUE_LIMIT


@functools.lru_cache(maxsize=None)
def terms_table(bits: int) -> np.ndarray:
    """e**x * 2**bits at every point x of the grid from 0 down to -26, as integers (float64);
    0 at the last."""
    grid = -np.arange(SOFTMAX_SPAN + 1, dtype=np.float64) / SOFTMAX_STEP
    table = np.rint(tables.exp(grid) * float(1 << bits))
    table[-1] = 0.0
    return table


def exp_terms(x: np.ndarray, bits: int) -> np.ndarray:
    """e**x * 2**bits for x <= 0 (x > 0 counts as 0), x rounded to the grid
    (1/SOFTMAX_STEP), as integers (float64): a table lookup, the same on every machine;
    0 below e**-26."""
    index = np.clip(x * -float(SOFTMAX_STEP), 0.0, float(SOFTMAX_SPAN))
    return terms_table(bits)[np.rint(index).astype(np.int32)]


def softmax(z: np.ndarray, never=None, scale=1.0) -> np.ndarray:
    """softmax of the rows of ``z`` times ``scale`` (a number or one per row), in place,
    tokens ``never`` set to 0; every operation correctly rounded, every sum exact."""
    x = z - z.max(axis=1, keepdims=True)  # <= 0, in z's precision
    terms = exp_terms(x, exp_bits(z.shape[1]))
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
    v = np.rint(np.clip(values.astype(np.float64), -VALUE_LIMIT, VALUE_LIMIT) * V_ONE)
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
