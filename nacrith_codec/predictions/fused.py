"""The ensemble's vocabulary-wide work per step in compiled passes (numba, CPU only).

Each function does in one pass over a row what the numpy code it replaces does in
several operations and temporaries, with the same IEEE-754 operations in the same order,
so the same bits (numerics/jit.py: fastmath off); that numpy code stays the reference,
used where numba is missing and by streams of format versions 1-5 (tests/test_fused.py
compares them bit for bit):

- ``softmax``: arith.softmax (the table's terms, their exact integer sum, the scale);
- ``expectation``: arith.expectation (integer products summed exactly in float64);
- ``mix``: Mixer.mix's ``a[set] * llm + bias`` in the rows' precision;
- ``bias_step``: BiasHead.learn (the rows' sum added first to last, the coded symbols'
  ones taken off in order, the step);
- ``blend``: the neural cache's mixture, ``p * (1 - lambda) + weights * share``.
"""

from __future__ import annotations

import functools

import numpy as np

from ..numerics import jit
from .arith import P_ONE, SOFTMAX_SPAN, SOFTMAX_STEP, V_ONE, VALUE_LIMIT, exp_bits, terms_table


@functools.lru_cache(maxsize=None)
def available() -> bool:
    return jit.available()


def _softmax(z, table, never, scales, terms):
    rows, v = z.shape
    for r in range(rows):
        top = z[r, 0]
        for i in range(1, v):
            top = max(top, z[r, i])
        total = 0.0
        for i in range(v):
            x = z[r, i] - top  # in z's precision, as numpy's subtraction
            index = min(max(x * -SOFTMAX_STEP, 0.0), SOFTMAX_SPAN)  # exact: a power of 2
            t = 0.0 if never[i] else table[int(np.rint(index))]
            terms[i] = t
            total += t  # integers below 2**53: exact in any order
        factor = scales[r] / total
        for i in range(v):
            z[r, i] = terms[i] * factor  # rounded once into z's precision


def _expectation(probs, values, out):
    rows, v = probs.shape
    for r in range(rows):
        acc = 0.0
        for i in range(v):
            p = np.rint(np.float64(probs[r, i]) * P_ONE)
            x = min(max(np.float64(values[r, i]), -VALUE_LIMIT), VALUE_LIMIT)
            acc += p * np.rint(x * V_ONE)  # integers below 2**52: exact in any order
        out[r] = acc / (P_ONE * V_ONE)


def _mix(z, llm, a, bias, biased):
    rows, v = llm.shape
    for r in range(rows):
        for i in range(v):
            x = llm[r, i] * a[r]  # a and bias in z's precision already
            z[r, i] = x + bias[i] if biased else x  # (x + 0 would turn -0 into 0)


def _bias_step(bias, probs, symbols, rate, grad):
    rows, v = probs.shape
    for i in range(v):
        g = np.float64(probs[0, i])
        for r in range(1, rows):
            g = g + np.float64(probs[r, i])
        grad[i] = g
    for s in symbols:
        grad[s] -= 1.0
    for i in range(v):
        bias[i] -= rate * grad[i]


def _blend(out, p, keep, weights, share):
    rows, v = weights.shape
    for r in range(rows):
        for i in range(v):
            out[r, i] = p[r, i] * keep[r] + weights[r, i] * share[r]  # float64, then out's


_kernels = jit.Kernels(globals(), (), ("_softmax", "_expectation", "_mix", "_bias_step",
                                       "_blend"))


def softmax(z: np.ndarray, never=None, scale=1.0) -> np.ndarray:
    """arith.softmax of the rows of ``z`` (a C-contiguous float32 or float64 view whose
    rows may be part of wider ones), in place."""
    rows, v = z.shape
    mask = np.zeros(v, np.bool_)
    if never is not None:
        mask[never] = True
    scales = np.ascontiguousarray(np.broadcast_to(np.asarray(scale, np.float64), (rows,)))
    _kernels["_softmax"](z, terms_table(exp_bits(v)), mask, scales, np.empty(v))
    return z


def expectation(probs: np.ndarray, values: np.ndarray) -> np.ndarray:
    """arith.expectation: sum_v probs[s, v] * values[s, v] per row, in integers."""
    out = np.empty(probs.shape[0])
    _kernels["_expectation"](probs, values, out)
    return out


def mix(z: np.ndarray, llm: np.ndarray, a: np.ndarray, bias) -> np.ndarray:
    """z = a (per row) * llm + bias, each operand in z's precision first (Mixer.mix)."""
    b = np.zeros(1, z.dtype) if bias is None else bias.astype(z.dtype)
    _kernels["_mix"](z, llm, a.astype(z.dtype), b, bias is not None)
    return z


def bias_step(bias: np.ndarray, probs: np.ndarray, symbols: np.ndarray, rate: float):
    """BiasHead.learn: bias -= rate * (the rows' sum - the coded symbols' one-hots)."""
    _kernels["_bias_step"](bias, probs, np.asarray(symbols, np.int64), float(rate),
                           np.empty(bias.shape[0]))


def blend(out: np.ndarray, p: np.ndarray, keep: np.ndarray, weights: np.ndarray,
          share: np.ndarray) -> np.ndarray:
    """out[:, :V] = p[:, :V] * keep[:, None] + weights * share[:, None] (float64, then
    out's precision): the neural cache's mixture."""
    _kernels["_blend"](out, p, keep, weights, share)
    return out
