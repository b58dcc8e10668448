"""Transcendental functions from tables that every machine computes alike.

libm's and numpy's ``exp``, ``sin`` and ``cos`` may differ in the last bit
between CPUs, SIMD widths and library versions.  Here the only operations on
floats are IEEE-754's correctly rounded ``+ - * /``, ``floor`` and ``ldexp``,
and the tables' values are computed once, in software, with the ``decimal``
module (libmpdec: integer arithmetic, the same result everywhere), then
checked against a digest written in this file, so a platform that computed
another table would fail loudly instead of writing different streams.

    exp2(t)     2**t for t <= 0: a 1,025-entry table with linear interpolation
                (relative error below 6e-8)
    exp(x)      exp2(x * LOG2E), x <= 0
    sigmoid(x)  from exp of -|x|
    attention_weights(x)  65535 * e**x for x <= 0 on a grid of 1/256, as integers
                (attention: the softmax's terms below 2**-16 of the largest vanish anyway)
    rotation(p) cos and sin of p * theta_i for RoPE, composed from the table of
                2**k * theta_i over the set bits of the integer position p
"""

from __future__ import annotations

import decimal
import functools
import hashlib
import math

import numpy as np

from ..errors import NacrithError
from .arrays import module_of as _module, on

FRACTION_BITS = 10  # the exp2 table has 2**10 + 1 entries over [0, 1]
LOG2E = 1.4426950408889634  # float64 nearest to 1 / ln 2
POSITION_BITS = 28  # RoPE positions 0 .. 2**28 - 1
_PRECISION = 40  # decimal digits of the tables' computation

#: BLAKE2b-64 of each table's bytes, as every machine must compute them.
DIGESTS = {"exp2": "3595dc70c96103ab", "rope-100000-64": "28851d47bc6ee967",
           "rope-1e+06-256": "e09d79b5b315f1ff", "rope-10000-256": "267ea800fc68a946"}


def _context() -> decimal.Context:
    return decimal.Context(prec=_PRECISION, rounding=decimal.ROUND_HALF_EVEN)


def _checked(name: str, table: np.ndarray) -> np.ndarray:
    digest = hashlib.blake2b(np.ascontiguousarray(table).tobytes(), digest_size=8).hexdigest()
    if DIGESTS.get(name) != digest:
        raise NacrithError(
            f"the exact engine's {name} table computes to {digest} on this platform, not "
            f"{DIGESTS.get(name)}: streams of the portable engine cannot be trusted here; "
            "please report this platform")
    table.setflags(write=False)
    return table


@functools.lru_cache(maxsize=None)
def _exp2_table() -> tuple[np.ndarray, np.ndarray]:
    ctx = _context()
    ln2 = ctx.ln(decimal.Decimal(2))
    n = 1 << FRACTION_BITS
    values = np.array([float(ctx.exp(ctx.multiply(ctx.divide(i, n), ln2))) for i in range(n + 1)])
    values = _checked("exp2", values)
    slopes = values[1:] - values[:-1]
    return values[:-1].copy(), slopes


def exp2_table() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """exp2's table: the value at each of its 1,024 points over [0, 1), the slope to the
    next, and 2**-k for k = 0 .. 1,000 (for the compiled kernels, numerics/kernels.py)."""
    return _exp2_table() + (_powers_of_two(),)


@functools.lru_cache(maxsize=None)
def _powers_of_two() -> np.ndarray:
    return np.array([math.ldexp(1.0, -k) for k in range(1001)])


def exp2(t: np.ndarray) -> np.ndarray:
    """2**t for float64 t <= 0 (values below -1,100 give 0)."""
    xp = _module(t)
    base, slope = (on(xp, table) for table in _exp2_table())
    t = xp.maximum(xp.asarray(t, dtype=np.float64), -1100.0)
    whole = xp.floor(t)
    scaled = (t - whole) * float(1 << FRACTION_BITS)  # exact: a power-of-two scaling
    # t - whole rounds to 1.0 for t within 2**-54 below 0: the table's last point, 2**0
    index = xp.minimum(xp.floor(scaled), float((1 << FRACTION_BITS) - 1))
    i = index.astype(np.int64)
    value = base[i] + slope[i] * (scaled - index)
    return xp.ldexp(value, whole.astype(np.int64))


def exp(x: np.ndarray) -> np.ndarray:
    """e**x for float64 x <= 0."""
    return exp2(_module(x).asarray(x, dtype=np.float64) * LOG2E)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """1 / (1 + e**-x) for any float64 x."""
    xp = _module(x)
    x = xp.asarray(x, dtype=np.float64)
    e = exp(-xp.abs(x))  # in (0, 1]
    positive = 1.0 / (1.0 + e)
    return xp.where(x >= 0, positive, e * positive)


ATTENTION_STEP = 256  # grid points per unit of the attention scores
ATTENTION_ONE = 65535.0  # the largest attention weight
_ATTENTION_SPAN = 12 * ATTENTION_STEP  # e**-12 * 65535 < 0.5: every weight beyond is 0


@functools.lru_cache(maxsize=None)
def _attention_table() -> np.ndarray:
    grid = -np.arange(_ATTENTION_SPAN + 1, dtype=np.float64) / ATTENTION_STEP
    table = np.rint(exp(grid) * ATTENTION_ONE)
    table[-1] = 0.0
    return table


def attention_table() -> np.ndarray:
    """attention_weights' table: its value at each point of the grid, 0 at the last."""
    return _attention_table()


def attention_weights(x: np.ndarray) -> np.ndarray:
    """rint(65535 * e**x) for x <= 0 rounded to the grid of 1/256 (0 below -12)."""
    xp = _module(x)
    index = xp.minimum(xp.rint(x * -float(ATTENTION_STEP)), _ATTENTION_SPAN)
    return on(xp, _attention_table())[index.astype(np.int64)]


def _cos_sin(angle: decimal.Decimal, ctx: decimal.Context, pi: decimal.Decimal):
    """cos and sin of a decimal angle by Taylor series after reduction to [-pi, pi]."""
    two_pi = 2 * pi
    angle = ctx.subtract(angle, ctx.multiply(two_pi, ctx.divide_int(ctx.add(angle, pi), two_pi)))
    term, c, s = decimal.Decimal(1), decimal.Decimal(0), decimal.Decimal(0)
    k = 0
    while True:  # term = angle**k / k!
        if k % 4 == 0:
            c += term
        elif k % 4 == 1:
            s += term
        elif k % 4 == 2:
            c -= term
        else:
            s -= term
        k += 1
        term = ctx.divide(ctx.multiply(term, angle), k)
        if abs(term) < decimal.Decimal(10) ** (-_PRECISION + 2):
            return float(+c), float(+s)


def _pi(ctx: decimal.Context) -> decimal.Decimal:
    """pi by Machin's formula, in decimal."""
    def arctan_inv(x: int) -> decimal.Decimal:
        total, power, n, sign = decimal.Decimal(0), ctx.divide(1, x), 1, 1
        while power > decimal.Decimal(10) ** (-_PRECISION - 2):
            total += sign * ctx.divide(power, n)
            power, n, sign = ctx.divide(power, x * x), n + 2, -sign
        return total
    return 4 * (4 * arctan_inv(5) - arctan_inv(239))


@functools.lru_cache(maxsize=None)
def _rope_table(base: float, dims: int) -> np.ndarray:
    """(POSITION_BITS, dims // 2, 2): cos and sin of 2**k * theta_i, theta_i = base**(-2i/dims)."""
    ctx = _context()
    pi, log_base = _pi(ctx), ctx.ln(decimal.Decimal(repr(base)))
    table = np.empty((POSITION_BITS, dims // 2, 2))
    for i in range(dims // 2):
        theta = ctx.exp(ctx.multiply(ctx.divide(-2 * i, dims), log_base))
        for k in range(POSITION_BITS):
            table[k, i] = _cos_sin(ctx.multiply(theta, 1 << k), ctx, pi)
    return _checked(f"rope-{base:g}-{dims}", table)


def rotation(positions: np.ndarray, base: float, dims: int) -> tuple[np.ndarray, np.ndarray]:
    """cos and sin (len(positions), dims // 2) of positions * theta_i, composed in a fixed
    order (lowest bit first) from the table of power-of-two multiples."""
    table = _rope_table(float(base), dims)
    p = np.asarray(positions, dtype=np.int64)
    if p.size and (p.min() < 0 or p.max() >> POSITION_BITS):
        raise NacrithError(f"a position beyond the RoPE table (2**{POSITION_BITS} tokens)")
    c = np.ones((len(p), dims // 2))
    s = np.zeros((len(p), dims // 2))
    for k in range(int(p.max()).bit_length() if p.size else 0):
        on = ((p >> k) & 1).astype(bool)
        if on.any():
            ck, sk = table[k, :, 0], table[k, :, 1]
            c_on, s_on = c[on], s[on]
            c[on] = c_on * ck - s_on * sk
            s[on] = s_on * ck + c_on * sk
    return c, s
