"""The ensemble's vocabulary-wide work per step in compiled passes (numba, CPU only).

Each function does in a pass or two over a row what the numpy code it replaces does in
several operations and temporaries, with the same IEEE-754 operations in the same order,
so the same bits (numerics/jit.py: fastmath off); that numpy code stays the reference,
used where numba is missing and by streams of format versions 1-5 (tests/test_fused.py
compares them bit for bit).  The passes take one contiguous row at a time, which lets
the compiler vectorize their loops (a 2-D view of the predictor's (V + 1)-wide rows is
not contiguous, and its loops ran element by element: 2 to 3.5 times slower for Gemma's
262,144 tokens), and sums of integers are taken in int64, whose additions may be
reordered, rather than in float64, whose additions may not (the same values: every
partial sum is an integer below 2**53):

- ``softmax``: arith.softmax (the table's terms, their exact integer sum, the scale);
- ``expectation``: arith.expectation (integer products, summed exactly);
- ``mix``: Mixer.mix's ``a[set] * llm + bias`` in the rows' precision;
- ``bias_step``: BiasHead.learn (the rows' sum added first to last, the coded symbols'
  ones taken off in order, the step);
- ``similar``: the neural cache's cosines of a step's rows and its entries, and the
  entries close enough to weigh;
- ``scaled``: the neural cache's mixture ``p * (1 - lambda) + weight * share`` for the
  tokens the cache has no weight for, ``p * (1 - lambda)``.
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
    """Rows in one loop each (the reference's order): rows whose largest value is not a
    finite number, which the row-wise passes below leave to it."""
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


def _softmax_row(z, top, table, never, scale, index, terms):
    """One contiguous row, its largest value ``top`` given: the grid points (a loop the
    compiler vectorizes), the table's terms and their sum in int64 (integers below 2**53:
    the float64 sum's value), the scale."""
    v = len(z)
    for i in range(v):
        x = z[i] - top  # in z's precision, as numpy's subtraction
        index[i] = np.int32(np.rint(min(max(x * -SOFTMAX_STEP, 0.0), SOFTMAX_SPAN)))
    total = 0
    for i in range(v):
        t = 0.0 if never[i] else table[index[i]]
        terms[i] = t
        total += np.int64(t)
    factor = scale / np.float64(total)
    for i in range(v):
        z[i] = terms[i] * factor  # rounded once into z's precision


def _expectation_row(probs, values):
    acc = 0  # integer products below 2**52, summed in int64: the float64 sum's value
    for i in range(len(probs)):
        p = np.int64(np.rint(np.float64(probs[i]) * P_ONE))
        x = min(max(np.float64(values[i]), -VALUE_LIMIT), VALUE_LIMIT)
        acc += p * np.int64(np.rint(x * V_ONE))
    return np.float64(acc) / (P_ONE * V_ONE)


def _mix_row(z, llm, a, bias, biased):
    for i in range(len(z)):
        x = llm[i] * a  # a and bias in z's precision already
        z[i] = x + bias[i] if biased else x  # (x + 0 would turn -0 into 0)


def _sum_row(grad, probs, first):
    """grad = probs (first), else grad + probs, in float64: the rows' sum, first to last."""
    for i in range(len(grad)):
        grad[i] = np.float64(probs[i]) if first else grad[i] + np.float64(probs[i])


def _bias_update(bias, grad, symbols, rate):
    for s in symbols:
        grad[s] -= 1.0
    for i in range(len(bias)):
        bias[i] -= rate * grad[i]


def _scaled_row(out, p, keep):
    for i in range(len(out)):
        out[i] = p[i] * keep  # float64, then out's


def _similar(q, length, keys, lengths, theta, least, best, rows, entries, xs, dots, cos):
    """The neural cache's similarities: each row's best cosine, and (row, entry, x) for
    x = (cosine - 1) * theta above ``least``, row by row; the count.  The dot products
    are integers (8-bit by 8-bit over 128 values, exact in int32), each entry's keys read
    once for every row; then each row's cosines in loops the compiler vectorizes."""
    n_rows, d = q.shape
    n = len(lengths)
    for j in range(n):
        key = keys[j]
        for r in range(n_rows):
            dot = 0
            for k in range(d):
                dot += np.int32(q[r, k]) * np.int32(key[k])
            dots[r, j] = dot
    found = 0
    for r in range(n_rows):
        lr, c, dr = length[r], cos[r], dots[r]
        for j in range(n):
            scale = lr * lengths[j]
            c[j] = np.float64(dr[j]) / (scale if scale > 0 else 1.0)
        top = -np.inf
        for j in range(n):
            top = max(top, c[j])
        best[r] = top
        for j in range(n):
            x = (c[j] - 1.0) * theta
            if x > least:
                rows[found], entries[found], xs[found] = r, j, x
                found += 1
    return found


_kernels = jit.Kernels(globals(), (), ("_softmax", "_softmax_row", "_expectation_row",
                                       "_mix_row", "_sum_row", "_bias_update", "_scaled_row",
                                       "_similar"))


def _rows(a: np.ndarray):
    """The rows of a 2-D array as contiguous 1-D arrays (views where they are), which the
    compiled loops vectorize: a row of the predictor's (V + 1)-wide rows cut to V is one."""
    return [row if row.flags.c_contiguous else np.ascontiguousarray(row) for row in a]


def softmax(z: np.ndarray, never=None, scale=1.0) -> np.ndarray:
    """arith.softmax of the rows of ``z`` (a float32 or float64 view whose rows are
    contiguous, as the predictor's (V + 1)-wide rows cut to V are), in place."""
    rows, v = z.shape
    mask = np.zeros(v, np.bool_)
    if never is not None:
        mask[never] = True
    scales = np.ascontiguousarray(np.broadcast_to(np.asarray(scale, np.float64), (rows,)))
    table, terms = terms_table(exp_bits(v)), np.empty(v)
    index = np.empty(v, np.int32)
    for r in range(rows):
        row = z[r]
        top = row.max() if v else row.dtype.type(0)
        if row.flags.c_contiguous and np.isfinite(top):
            _kernels["_softmax_row"](row, top, table, mask, scales[r], index, terms)
        else:
            _kernels["_softmax"](z[r:r + 1], table, mask, scales[r:r + 1], terms)
    return z


def expectation(probs: np.ndarray, values: np.ndarray) -> np.ndarray:
    """arith.expectation: sum_v probs[s, v] * values[s, v] per row, in integers."""
    return np.array([_kernels["_expectation_row"](p, x)
                     for p, x in zip(_rows(probs), _rows(values))], dtype=np.float64)


def mix(z: np.ndarray, llm: np.ndarray, a: np.ndarray, bias) -> np.ndarray:
    """z = a (per row) * llm + bias, each operand in z's precision first (Mixer.mix)."""
    b = np.zeros(1, z.dtype) if bias is None else bias.astype(z.dtype)
    a = a.astype(z.dtype)
    for r, (row, logits) in enumerate(zip(z, _rows(llm))):
        out = row if row.flags.c_contiguous else np.empty_like(row)
        _kernels["_mix_row"](out, logits, a[r], b, bias is not None)
        if out is not row:
            row[:] = out
    return z


def bias_step(bias: np.ndarray, probs: np.ndarray, symbols: np.ndarray, rate: float):
    """BiasHead.learn: bias -= rate * (the rows' sum - the coded symbols' one-hots)."""
    grad = np.empty(bias.shape[0]) if len(probs) else np.zeros(bias.shape[0])
    for r, row in enumerate(_rows(probs)):
        _kernels["_sum_row"](grad, row, r == 0)
    _kernels["_bias_update"](bias, grad, np.asarray(symbols, np.int64), float(rate))


def similar(q: np.ndarray, length: np.ndarray, keys: np.ndarray, lengths: np.ndarray,
            theta: float, least: float):
    """The neural cache's (best cosine per row, rows, entries, x) for rows of integers
    ``q`` (float32) against int8 ``keys`` (NeuralCache.predict's numpy operations)."""
    n = len(q) * len(keys)
    rows, entries, xs = np.empty(n, np.int64), np.empty(n, np.int64), np.empty(n)
    best = np.empty(len(q))
    found = _kernels["_similar"](np.ascontiguousarray(q, np.int8), length, keys, lengths,
                                 float(theta), float(least), best, rows, entries, xs,
                                 np.empty((len(q), len(keys)), np.int32),
                                 np.empty((len(q), len(keys))))
    return best, rows[:found], entries[:found], xs[:found]


def scaled(out: np.ndarray, p: np.ndarray, keep: np.ndarray, v: int) -> np.ndarray:
    """out[:, :v] = p[:, :v] * keep[:, None] (float64, then out's precision): the neural
    cache's mixture for the tokens it has no weight for."""
    for r in range(len(keep)):
        row, source = out[r, :v], p[r, :v]
        target = row if row.flags.c_contiguous else np.empty_like(row)
        _kernels["_scaled_row"](target, source if source.flags.c_contiguous else
                                np.ascontiguousarray(source), keep[r])
        if target is not row:
            row[:] = target
    return out
