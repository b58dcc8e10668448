"""The exact engine's arithmetic as numpy's (or CuPy's) operations one at a time, with
float32 GEMM products: the reference every faster arithmetic is compared with bit for bit
(compiled.py), and what a GPU runs.

Every matrix product multiplies integers whose partial sums stay below 2**24, so float32
GEMM gives the one exact result on any BLAS, kernel, thread count or GPU: 8-bit weights
per output row (and keys and values per head) times 14-bit activations per token row
(and queries per head), each activation cut in two 7-bit halves, ``high * 128 + low``,
that go through the product as two rows of one GEMM and are joined afterwards in
float64.  Scales are applied with correctly rounded multiplications in an order the code
fixes, norms sum squares of integers (exact in any order), and exp, sigmoid (so SiLU and
GELU) and RoPE come from ``tables``.  Each function takes the array module of its
arguments.

``Reference`` gathers them behind the interface the network computes with (network.py
says what is computed, an arithmetic how): the weight products, and the work around
them that an arithmetic may fuse (norms, quantization, the gated feed-forward, RoPE and
the cache's store, attention).
"""

from __future__ import annotations

import numpy as np

from ...numerics import tables
from ...numerics.arrays import module_of
from ...numerics.levels import (ACT_LEVELS, CACHE_LEVELS, GELU_CUBIC, GELU_SCALE, HALF,
                                NORM_LEVELS, exact_inputs)
from .weights import WEIGHT_LEVELS

_MASKED = -1e300
VALUE_CHUNK = (1 << 24) // (255 * 127)  # slots per exact float32 value product (518)


def quantize(x: np.ndarray, levels: int = ACT_LEVELS) -> tuple[np.ndarray, np.ndarray]:
    """Integers in [-levels, levels] over the last axis (float32), and their float64 scale."""
    xp = module_of(x)
    top = xp.max(xp.abs(x), axis=-1)
    top = xp.where(top > 0, top, 1.0)
    q = xp.rint(x * (levels / top)[..., None])
    return q.astype(np.float32), top / levels


def halves(q: np.ndarray, axis: int) -> np.ndarray:
    """14-bit integers as their high and low 7-bit halves, stacked along ``axis``."""
    xp = module_of(q)
    high = xp.rint(q * (1.0 / HALF))
    return xp.concatenate([high, q - high * HALF], axis=axis).astype(np.float32)


def joined(out: np.ndarray, axis: int) -> np.ndarray:
    """The product of halves(q) joined again: high * HALF + low, exact in float64."""
    high, low = module_of(out).split(out, 2, axis=axis)
    return high.astype(np.float64) * HALF + low


def product(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Every matrix product of the engine: float32 operands holding integers whose partial
    sums stay below 2**24, so any BLAS gives the one exact result.  (The tests replace it
    with an int64 product to prove that.)"""
    return module_of(a).matmul(a, b)


def inverse_rms(x: np.ndarray, eps: float) -> np.ndarray:
    """1 / RMS of rows (the last axis), from integer sums of squares."""
    n, xp = x.shape[-1], module_of(x)
    x16, unit = quantize(x, NORM_LEVELS)
    sq = x16.astype(np.float64)
    sums = (sq * sq).sum(axis=-1)  # integers below 2**53: exact in any order
    mean = (sums * (unit * unit)) / n
    return 1.0 / xp.sqrt(mean + eps)


def rms_quantized(x: np.ndarray, gain: np.ndarray, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """RMSNorm of rows, then 14-bit quantization: (integers, scale per row)."""
    inv = inverse_rms(x, eps)
    q, scale = quantize(x * gain)
    return q, scale * inv


class Linear:
    """y = x W^T for 14-bit x rows and 8-bit W rows, exact: the halves of x (|h| <= 64)
    times W over K <= 2,048 inputs stay below 64 * 127 * 2,048 < 2**24 (float32 GEMM)."""

    def __init__(self, q: np.ndarray, scale: np.ndarray):
        self.q = q.astype(np.float32)  # (K, N) int8 -> float32 (on its device), for the GEMM
        self.scale = scale  # (N,) float64
        exact_inputs(q.shape[0], WEIGHT_LEVELS)

    def __call__(self, xq: np.ndarray, xs: np.ndarray, dtype=np.float64) -> np.ndarray:
        """The product of integer rows ``xq`` (float32) scaled by ``xs`` per row, float64
        (or rounded once into ``dtype``)."""
        acc = joined(product(halves(xq, 0), self.q), 0)
        return ((acc * xs[:, None]) * self.scale[None, :]).astype(dtype, copy=False)


def rope(x: np.ndarray, c: np.ndarray, s: np.ndarray, neox: bool = False) -> np.ndarray:
    """Rotate pairs of x (N, heads, dims) by the angles of each row: adjacent pairs
    (LLaMA's GGUF layout), or with ``neox`` dimension i with i + dims / 2 (Gemma's)."""
    half = x.shape[-1] // 2
    first, second = (x[..., :half], x[..., half:]) if neox else (x[..., 0::2], x[..., 1::2])
    c, s = c[:, None, :], s[:, None, :]
    out = module_of(x).empty_like(x)
    a, b = (out[..., :half], out[..., half:]) if neox else (out[..., 0::2], out[..., 1::2])
    a[...] = first * c - second * s
    b[...] = first * s + second * c
    return out



def activation(arch: str, g: np.ndarray) -> np.ndarray:
    """The gate's nonlinearity: SiLU (LLaMA) or GELU (Gemma), with tables' sigmoid."""
    if arch == "gemma3":
        return g * tables.sigmoid(GELU_SCALE * (g + ((GELU_CUBIC * g) * g) * g))
    return g * tables.sigmoid(g)


def attend(cache, q, at: "Rows", shape, window: int, sink: int, own_slots: bool):
    """Softmax attention of each row of ``q`` (N, heads, head_dim) over its own stream's
    slots up to its own in one layer's ``cache`` (keys (S, kv, d, W) and values
    (S, kv, W, d), int8; their scales (S, kv, W)), with a local ``window`` (0: none).  Rows of
    one stream each (a step) read their streams' slots in one batched product; a run of
    rows of one stream (a prefill) reads that stream's slots in place, its rows as one
    product.  Either way every row's numbers are the same: the products are exact
    integers, and every other operation is elementwise or an integer sum."""
    s, xp = shape, module_of(q)
    seq, slot = at.host_seq, at.host_slot
    n, group = len(seq), s.heads // s.kv_heads
    keys_of, kscale_of, values_of, vscale_of = cache
    qq, qs = quantize(q.reshape(n, s.kv_heads, group, s.head_dim))
    qs = qs * (1.0 / np.sqrt(s.head_dim))  # a power of two for SmolLM2's heads of 64
    if at.runs is None or not own_slots:  # (the skip's rule needs the step's span)
        span = int(slot.max()) + 1
        first = int(seq[0])
        if np.array_equal(seq, np.arange(first, first + n)):  # one slice: no copy
            rows = slice(first, first + n)
        else:
            rows = at.seq
        keys = keys_of[rows, :, :, :span].astype(np.float32)
        values = values_of[rows, :, :span].astype(np.float32)
        raw = joined(product(halves(qq, 2), keys), 2)  # (n, kv, group, span), exact
        weights = _weights(raw, qs, kscale_of[rows, :, :span], vscale_of[rows, :, :span],
                           at, slice(None), span, window, sink, own_slots)
        return _mixed(weights, lambda c, lo, hi: product(c, values[:, :, lo:hi]),
                           span, group)
    out = xp.empty((n, s.heads, s.head_dim))
    for stream, lo, hi in at.runs:
        m, span = hi - lo, int(slot[hi - 1]) + 1  # a run's slots ascend
        keys = keys_of[stream, :, :, :span].astype(np.float32)  # (kv, d, span)
        values = values_of[stream, :, :span].astype(np.float32)
        h = halves(qq[lo:hi], 2)  # (m, kv, 2 group, head_dim) -> one product per head
        r = product(h.transpose(1, 0, 2, 3).reshape(s.kv_heads, -1, s.head_dim), keys)
        raw = joined(r.reshape(s.kv_heads, m, 2 * group, span).transpose(1, 0, 2, 3), 2)
        weights = _weights(raw, qs[lo:hi], kscale_of[stream, None, :, :span],
                           vscale_of[stream, None, :, :span], at, slice(lo, hi), span,
                           window, sink, own_slots)

        def part(c, a, b, m=m, values=values):  # (m, kv, 2 group, slots) by (kv, slots, d)
            flat = c.transpose(1, 0, 2, 3).reshape(s.kv_heads, -1, b - a)
            y = product(flat, values[:, a:b])
            return y.reshape(s.kv_heads, m, 2 * group, -1).transpose(1, 0, 2, 3)
        out[lo:hi] = _mixed(weights, part, span, group)
    return out

def _weights(raw, qs, kscale, vscale, at: "Rows", rows: slice, span: int, window: int,
         sink: int, own_slots: bool):
    """Scores of ``at``'s rows ``rows`` -> (integer value weights in two 8-bit halves,
    the value scale each is relative to, the weights' total): elementwise, and integer
    sums.  A row sees the slots up to its own, and with a local ``window`` only those
    of its last ``window`` positions (the sink's slots hold positions 0 .. sink - 1)."""
    xp = module_of(raw)
    scores = raw * (qs[..., None] * kscale[:, :, None, :])
    row_slot = at.slot[rows]
    local = window and int(at.host_pos[rows].max()) >= window
    if at.host_slot[rows].min() < span - 1 or local:  # a row must not see some slots
        slots = xp.arange(span)[None, :]
        valid = slots <= row_slot[:, None]
        if local:
            first = xp.where(slots < sink, at.pos[rows][:, None], row_slot[:, None])
            valid &= slots > first - window
        scores = xp.where(valid[:, None, None, :], scores, _MASKED)
        if own_slots:  # no scale of a slot after its own sets the rounding
            vscale = xp.where(valid[:, None, :], vscale, 0.0)
    e = tables.attention_weights(scores - scores.max(axis=-1, keepdims=True))
    total = e.sum(axis=-1)  # integers: exact in any order
    top = vscale.max(axis=-1)  # (n, kv)
    weight = xp.rint(e * (vscale / top[..., None])[:, :, None, :])  # integers <= 65535
    high = xp.floor(weight * (1.0 / 256))
    parts = xp.concatenate([high, weight - high * 256], axis=2).astype(np.float32)
    return parts, top, total

def _mixed(weights, by_values, span, group):
    """The values weighted: ``by_values(parts, lo, hi)`` multiplies the weights' parts of
    slots lo..hi by those slots' values, in chunks of slots whose sums are integers
    below 2**24, added in float64."""
    parts, top, total = weights
    acc = None
    for lo in range(0, span, VALUE_CHUNK):  # each chunk's sums are integers below 2**24
        hi = min(lo + VALUE_CHUNK, span)
        part = by_values(parts[..., lo:hi], lo, hi)
        acc = part.astype(np.float64) if acc is None else acc + part
    acc = acc[:, :, :group] * 256.0 + acc[:, :, group:]
    out = (acc * top[:, :, None, None]) / total[..., None]
    return out.reshape(len(out), -1, acc.shape[-1])


class Rows:
    """A step's rows: stream, cache slot and position of each, on the host (for the step's
    shape) and on the device (for indexing its arrays); ``runs``, where a stream has more
    than one row, the (stream, first row, end) of each stream's rows (they are contiguous)."""

    def __init__(self, seq: np.ndarray, slot: np.ndarray, pos: np.ndarray, device):
        self.host_seq, self.host_slot, self.host_pos = seq, slot, pos
        self.seq, self.slot, self.pos = device.put(seq), device.put(slot), device.put(pos)
        self.runs = None
        if len(seq) > 1 and (seq[1:] == seq[:-1]).any():
            starts = np.flatnonzero(np.r_[True, seq[1:] != seq[:-1]])
            ends = np.r_[starts[1:], len(seq)]
            self.runs = [(int(seq[a]), int(a), int(b)) for a, b in zip(starts, ends)]


class Reference:
    """The arithmetic of one network, numpy's or CuPy's operations one at a time.  An
    operand (what ``norm``, ``quantized`` and ``gated`` return, and what a ``linear``
    takes) is (integer rows, float64 scale per row); here the integers are float32."""

    products = "float32"

    def linear(self, q: np.ndarray, scale: np.ndarray, graph_file: str | None = None):
        """The product by int8 weights ``q`` (K, N) with a ``scale`` per column: a callable
        of an operand giving float64 rows (N,).  (``graph_file``: the weights' cached graph
        of an 8-bit product, which these products do not use.)"""
        return Linear(q, scale)

    def norm(self, x, gain, eps):
        return rms_quantized(x, gain, eps)

    def normed(self, x, gain, eps):
        """RMSNorm of float64 rows (the last axis) as float64: Gemma's norms of each head's
        queries and keys and of each block's outputs."""
        return (x * inverse_rms(x, eps)[..., None]) * gain

    def quantized(self, x):
        return quantize(x)

    def gated(self, gu, ffn: int, arch: str):
        """The feed-forward block's gate times its up projection (``gu``'s halves)."""
        return quantize(activation(arch, gu[:, :ffn]) * gu[:, ffn:])

    def store(self, cache, q, k, v, turn, neox: bool, at: "Rows"):
        """Queries ``q`` and keys ``k`` rotated by ``turn`` (cos, sin per row); the keys and
        the values ``v`` stored in one layer's ``cache`` at each row's stream and slot as
        8-bit integers with a scale per head.  The rotated queries."""
        c, sn = turn
        q, k = rope(q, c, sn, neox), rope(k, c, sn, neox)
        keys, key_scale, values, value_scale = cache
        kq, ks = quantize(k, CACHE_LEVELS)
        vq, vs = quantize(v, CACHE_LEVELS)
        keys[at.seq, :, :, at.slot] = kq
        key_scale[at.seq, :, at.slot] = ks
        values[at.seq, :, at.slot] = vq
        value_scale[at.seq, :, at.slot] = vs
        return q

    def attend(self, cache, q, at: "Rows", shape, window: int, sink: int, own_slots: bool):
        return attend(cache, q, at, shape, window, sink, own_slots)
