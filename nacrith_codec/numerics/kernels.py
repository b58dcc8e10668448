"""Compiled elementwise work around the exact engine's 8-bit products (numba, CPU only).

Each kernel does in one pass what ``engines/exact/reference.py`` does in several numpy
operations, with the same IEEE-754 operations in the same order, so the same bits:
numba compiles with ``fastmath=False`` (LLVM then contracts nothing into a fused
multiply-add and reorders no floating-point sum), every operation here is either exact
(integers and powers of two) or one correctly rounded multiplication, and nothing is
summed in floating point.  The numpy code stays the reference (tests/test_kernels.py
compares them bit for bit, also under ``NUMBA_CPU_NAME=generic``) and is what a GPU runs.

- ``split_rows``: 14-bit integer rows (float32, |q| <= 8191) as the uint8 rows the
  8-bit product takes: ``high + 64`` then ``low + 64``, ``q = high * 128 + low`` with
  ``high = rint(q / 128)``; ``norm_split``, ``quantize_split`` and ``gated_split`` make
  those rows from float64 ones (reference.rms_quantized, quantize, activation) in the
  same pass.
- ``normed``: Gemma's RMSNorm of float64 rows that stay float64 (reference.normed).
- ``join_scaled``: the 8-bit product of those rows, less its offset, joined and scaled:
  ``((high * 128 + low) * xs[row]) * scale[column]`` in float64.
- ``rope_store``: reference.rope of queries and keys, and the store of the keys and
  values into one layer's 8-bit cache.
- ``attend``: reference.attend for rows that see their own slots, its sums of integers
  in int32 and int64 (exact in any order); a group's heads read their shared values
  once.

The integer grids and constants are numerics/levels.py's and tables.py's, read by numba
as compile-time constants.

numba compiles them on first use (numerics/jit.py: about 0.5 s once, then read from its
cache), on the caller's thread.
"""

from __future__ import annotations

import numpy as np

from . import jit, tables
from .int8 import OFFSET, ROW_LIMIT, BoundsError
from .levels import ACT_LEVELS, CACHE_LEVELS, GELU_CUBIC, GELU_SCALE, HALF, NORM_LEVELS

# numba reads module globals as constants when it compiles
SPLIT_LIMIT = ACT_LEVELS  # the largest magnitude of a row split into two 7-bit halves
LOG2E, EXP2_POINTS = tables.LOG2E, 1 << tables.FRACTION_BITS
ATTENTION_STEP = tables.ATTENTION_STEP
#: Slots whose value products an int32 holds: 256 * 65,535 * 128 < 2**31.
MIXTURE_RUN = 256

def _split_into(v, out, low_row, high_row, j):
    """One 14-bit integer ``v`` as its uint8 halves + 64 (False if it is not one)."""
    ok = abs(v) <= SPLIT_LIMIT and v == np.rint(v)  # NaN fails both
    if not ok:
        v = 0.0
    high = np.rint(v * (1.0 / HALF))
    out[high_row, j] = np.uint8(high + OFFSET)
    out[low_row, j] = np.uint8(v - high * HALF + OFFSET)
    return ok


def _split_rows(q, out):
    m, k = q.shape
    ok = True
    for i in range(m):
        for j in range(k):
            ok &= _split_into(np.float64(q[i, j]), out, m + i, i, j)
    return ok


def _join_scaled(raw, offset, xs, scale, out):
    m, n = out.shape
    for i in range(m):
        x = xs[i]
        for j in range(n):
            high = np.float64(raw[i, j] - offset[j])
            low = np.float64(raw[m + i, j] - offset[j])
            out[i, j] = ((high * HALF + low) * x) * scale[j]


def _top(x):
    """reference.quantize's largest magnitude of a row: 1.0 where all are 0."""
    top = 0.0
    for v in x:
        top = max(top, abs(v))
    return top if top > 0 else 1.0


def _quantized_split(y, out, i, m):
    """Row ``y`` (float64) quantized to ACT_LEVELS and split into rows i and m + i of
    ``out``; (its scale, whether every integer was in bounds)."""
    top = _top(y)
    mul = ACT_LEVELS / top
    ok = True
    for j in range(len(y)):
        ok &= _split_into(np.rint(y[j] * mul), out, m + i, i, j)
    return top / ACT_LEVELS, ok


def _inverse_rms(x, eps):
    """reference.inverse_rms of one row: 1 / RMS from the integer sums of its squares."""
    top = _top(x)
    mul = NORM_LEVELS / top
    sums = 0.0  # integers below 2**53: exact in any order
    for v in x:
        q = np.rint(v * mul)
        sums += q * q
    unit = top / NORM_LEVELS
    return 1.0 / np.sqrt((sums * (unit * unit)) / len(x) + eps)


def _norm_split(x, gain, eps, out, xs, row):
    m, k = x.shape
    ok = True
    for i in range(m):
        inv = _inverse_rms(x[i], eps)
        for j in range(k):
            row[j] = x[i, j] * np.float64(gain[j])
        scale, good = _quantized_split(row, out, i, m)
        xs[i] = scale * inv
        ok &= good
    return ok


def _normed(x, gain, eps, out):
    m, k = x.shape
    for i in range(m):
        inv = _inverse_rms(x[i], eps)
        for j in range(k):
            out[i, j] = (x[i, j] * inv) * np.float64(gain[j])


def _quantize_split(x, out, xs):
    m = x.shape[0]
    ok = True
    for i in range(m):
        xs[i], good = _quantized_split(x[i], out, i, m)
        ok &= good
    return ok


def _exp2(t, base, slope, pow2):
    """tables.exp2 of one float64 ``t`` <= 0; its ldexp as products by exact powers of two
    (pow2[k] = 2**-k): exact while the result is normal, else one rounding, as ldexp's."""
    t = max(t, -1100.0)
    whole = np.floor(t)
    scaled = (t - whole) * EXP2_POINTS
    index = min(np.floor(scaled), EXP2_POINTS - 1.0)
    i = int(index)
    value = base[i] + slope[i] * (scaled - index)  # in [1, 2]
    k = -int(whole)
    if k <= 1000:
        return value * pow2[k]
    return (value * pow2[1000]) * pow2[k - 1000]


def _sigmoid(x, base, slope, pow2):
    e = _exp2(-abs(x) * LOG2E, base, slope, pow2)
    positive = 1.0 / (1.0 + e)
    return positive if x >= 0 else e * positive


def _gated_split(gu, ffn, gelu, base, slope, pow2, out, xs, row):
    m = gu.shape[0]
    ok = True
    for i in range(m):
        for j in range(ffn):
            g = gu[i, j]
            if gelu:
                a = g * _sigmoid(GELU_SCALE * (g + ((GELU_CUBIC * g) * g) * g), base, slope,
                                 pow2)
            else:
                a = g * _sigmoid(g, base, slope, pow2)
            row[j] = a * gu[i, ffn + j]
        xs[i], good = _quantized_split(row, out, i, m)
        ok &= good
    return ok


def _mixture(weight, width, values, m, acc, part):
    """acc[j] = the first m weights of head j (``weight[j * width:]``) times their
    slots' values (rows of ``values``), for a group's heads at once (they share the
    values): exact integer sums, in int32 over runs of MIXTURE_RUN slots (each product
    at most 65,535 x 128) and int64 across runs."""
    group, hd = acc.shape
    for j in range(group):
        for d in range(hd):
            acc[j, d] = 0
    for lo in range(0, m, MIXTURE_RUN):
        for j in range(group):
            for d in range(hd):
                part[j, d] = 0
        for t in range(lo, min(lo + MIXTURE_RUN, m)):
            row = values[t]
            for j in range(group):
                w = weight[j * width + t]
                if w != 0:
                    for d in range(hd):
                        part[j, d] += w * np.int32(row[d])
        for j in range(group):
            for d in range(hd):
                acc[j, d] += part[j, d]


def _attend(q, keys, kscale, values, vscale, seq, slot, pos, group, q_mul, window, sink,
            table, out, qq, qs, raw, seen, score, ratio, weight, totals, acc, part):
    n, heads, hd = q.shape
    span_max, width = len(table) - 1, len(score)
    for r in range(n):
        s, c, p = seq[r], slot[r], pos[r]
        m = c + 1  # the slots up to the row's own; with a local window, those of its last
        for t in range(m):  # ``window`` positions (the sink's slots hold 0 .. sink - 1)
            seen[t] = window == 0 or t > (p if t < sink else c) - window
        for g in range(heads // group):
            vtop = 0.0
            for t in range(m):
                if seen[t]:
                    vtop = max(vtop, vscale[s, g, t])
            for j in range(group):
                h = g * group + j
                top = _top(q[r, h])
                mul = ACT_LEVELS / top
                for d in range(hd):
                    qq[j, d] = np.int32(np.rint(q[r, h, d] * mul))
                qs[j] = (top / ACT_LEVELS) * q_mul
                for t in range(m):
                    raw[j, t] = 0
            for d in range(hd):  # |sums| <= 8191 * 127 * 256 < 2**31: exact in int32
                key = keys[s, g, d]
                for j in range(group):
                    qd, row = qq[j, d], raw[j]
                    for t in range(m):
                        row[t] += qd * np.int32(key[t])
            for t in range(m):  # the heads of a group share their values' scales
                ratio[t] = vscale[s, g, t] / vtop
            for j in range(group):
                best = -np.inf
                for t in range(m):
                    score[t] = raw[j, t] * (qs[j] * kscale[s, g, t])
                    if seen[t]:
                        best = max(best, score[t])
                total = 0.0
                for t in range(m):
                    e = table[int(min(np.rint((score[t] - best) * -ATTENTION_STEP), span_max))]
                    e = e if seen[t] else 0.0
                    total += e
                    weight[j * width + t] = np.int32(np.rint(e * ratio[t]))  # <= 65535
                totals[j] = total
            _mixture(weight, width, values[s, g], m, acc, part)
            for j in range(group):
                h = g * group + j
                for d in range(hd):
                    out[r, h, d] = (np.float64(acc[j, d]) * vtop) / totals[j]


def _rope_store(q, k, v, c, sn, neox, keys, kscale, values, vscale, seq, slot, rotated):
    n, heads, hd = q.shape
    half = hd // 2
    for r in range(n):
        for h in range(heads + k.shape[1]):
            x = q[r, h] if h < heads else k[r, h - heads]
            out = rotated[r, h]
            for i in range(half):
                a, b = (i, half + i) if neox else (2 * i, 2 * i + 1)
                first, second = x[a], x[b]
                out[a] = first * c[r, i] - second * sn[r, i]
                out[b] = first * sn[r, i] + second * c[r, i]
        s, t = seq[r], slot[r]
        for g in range(k.shape[1]):  # the cache's 8-bit keys and values
            key = rotated[r, heads + g]
            top = _top(key)
            mul = CACHE_LEVELS / top
            for d in range(hd):
                keys[s, g, d, t] = np.rint(key[d] * mul)
            kscale[s, g, t] = top / CACHE_LEVELS
            top = _top(v[r, g])
            mul = CACHE_LEVELS / top
            for d in range(hd):
                values[s, g, t, d] = np.rint(v[r, g, d] * mul)
            vscale[s, g, t] = top / CACHE_LEVELS


_HELPERS = ("_split_into", "_top", "_inverse_rms", "_mixture", "_quantized_split", "_exp2",
            "_sigmoid")
_KERNELS = ("_split_rows", "_join_scaled", "_norm_split", "_normed", "_quantize_split",
            "_gated_split", "_rope_store", "_attend")


available = jit.available
_kernels = jit.Kernels(globals(), _HELPERS, _KERNELS)


def _checked(ok):
    if not ok:
        raise BoundsError(f"rows to split must be integers in [-{SPLIT_LIMIT}, {SPLIT_LIMIT}] "
                          f"(halves within [-{ROW_LIMIT}, {ROW_LIMIT}], +{OFFSET})")


def split_rows(q: np.ndarray) -> np.ndarray:
    """(2M, K) uint8 rows, 0..128, for float32 integer rows ``q`` (M, K), |q| <= 8191."""
    q = np.ascontiguousarray(q, dtype=np.float32)
    out = np.empty((2 * q.shape[0], q.shape[1]), np.uint8)
    _checked(_kernels["_split_rows"](q, out))
    return out


def join_scaled(raw: np.ndarray, offset: np.ndarray, xs: np.ndarray,
                scale: np.ndarray, dtype=np.float64) -> np.ndarray:
    """(M, N) float64: the int32 product ``raw`` (2M, N) of split rows, less ``offset`` (N,)
    per column, joined (high * 128 + low) and scaled by ``xs`` (M,) and ``scale`` (N,);
    with ``dtype`` float32, each float64 value rounded once into it (as ``astype``)."""
    out = np.empty((raw.shape[0] // 2, raw.shape[1]), dtype)
    _kernels["_join_scaled"](np.ascontiguousarray(raw), offset,
                               np.ascontiguousarray(xs, np.float64),
                               np.ascontiguousarray(scale, np.float64), out)
    return out


def _rows_for(x: np.ndarray, k: int):
    return np.empty((2 * x.shape[0], k), np.uint8), np.empty(x.shape[0], np.float64)


def norm_split(x: np.ndarray, gain: np.ndarray, eps: float):
    """Network.norm of float64 rows ``x`` (M, K) then ``split_rows``: (the (2M, K) uint8
    rows of the 8-bit product, the float64 scale of each row)."""
    out, xs = _rows_for(x, x.shape[1])
    _checked(_kernels["_norm_split"](np.ascontiguousarray(x, np.float64), gain, float(eps),
                                       out, xs, np.empty(x.shape[1])))
    return out, xs


def normed(x: np.ndarray, gain: np.ndarray, eps: float) -> np.ndarray:
    """reference.Reference.normed: RMSNorm of float64 rows (the last axis of ``x``) as
    float64, its RMS from integer sums of squares."""
    rows = np.ascontiguousarray(x.reshape(-1, x.shape[-1]), np.float64)
    out = np.empty_like(rows)
    _kernels["_normed"](rows, gain, float(eps), out)
    return out.reshape(x.shape)


def quantize_split(x: np.ndarray):
    """reference.quantize of float64 rows ``x`` (M, K) then ``split_rows``."""
    out, xs = _rows_for(x, x.shape[1])
    _checked(_kernels["_quantize_split"](np.ascontiguousarray(x, np.float64), out, xs))
    return out, xs


def gated_split(gu: np.ndarray, ffn: int, gelu: bool):
    """reference.activation of ``gu[:, :ffn]`` times ``gu[:, ffn:]``, quantized and split:
    the feed-forward block's input to its down product."""
    out, xs = _rows_for(gu, ffn)
    _checked(_kernels["_gated_split"](np.ascontiguousarray(gu, np.float64), ffn, gelu,
                                        *tables.exp2_table(), out, xs, np.empty(ffn)))
    return out, xs


def attend(q, keys, key_scale, values, value_scale, seq, slot, pos, group: int,
           q_mul: float, window: int, sink: int) -> np.ndarray:
    """Context._attend's attention of each row (``q``: (N, heads, head_dim) float64) over
    its own stream's cached slots up to its own (one layer's caches: keys (S, kv, d, W),
    values (S, kv, W, d), int8; scales (S, kv, W)), with the same integers: the scores'
    and the mixture's sums are exact int32 and int64 sums here, there exact float32
    products of 7- and 8-bit halves joined in float64."""
    n, heads, hd = q.shape
    out = np.empty((n, heads, hd))
    width = keys.shape[-1]
    _kernels["_attend"](np.ascontiguousarray(q, np.float64), keys, key_scale, values,
                          value_scale, seq, slot, pos, group, float(q_mul), window, sink,
                          tables.attention_table(), out, np.empty((group, hd), np.int32),
                          np.empty(group),
                          np.empty((group, width), np.int32), np.empty(width, np.bool_),
                          np.empty(width), np.empty(width), np.empty(group * width, np.int32),
                          np.empty(group), np.empty((group, hd), np.int64),
                          np.empty((group, hd), np.int32))
    return out


def rope_store(q, k, v, c, sn, neox: bool, keys, key_scale, values, value_scale, seq, slot):
    """reference.rope of queries ``q`` (N, heads, d) and keys ``k`` (N, kv, d) by the
    angles' cos ``c`` and sin ``sn`` (N, d / 2), and the rotated keys and the values
    ``v`` stored in one layer's caches at each row's stream and slot as Context._forward
    stores them (8-bit integers, a scale per head); the rotated queries."""
    n, heads, hd = q.shape
    rotated = np.empty((n, heads + k.shape[1], hd))
    _kernels["_rope_store"](np.ascontiguousarray(q, np.float64),
                              np.ascontiguousarray(k, np.float64),
                              np.ascontiguousarray(v, np.float64), c, sn, neox, keys, key_scale,
                              values, value_scale, seq, slot, rotated)
    return rotated[:, :heads]
