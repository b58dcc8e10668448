"""The integer grids of the exact engine's numbers, shared by its numpy reference
(engines/exact/reference.py) and its compiled kernels (kernels.py): one definition, so
the two cannot drift apart."""

ACT_LEVELS = 8191  # activations: integers in [-8191, 8191] times a scale per row
HALF = 128  # an activation is high * HALF + low, |high|, |low| <= 64
CACHE_LEVELS = 127  # keys and values: 8-bit integers times a scale per slot and head
NORM_LEVELS = 32767  # the integers whose squares give a row's RMS
F32_EXACT = 1 << 24  # float32 adds integers exactly below this

#: GELU's tanh form, 0.5 x (1 + tanh(u)) = x sigmoid(2 u), u = sqrt(2 / pi) (x + 0.044715 x**3)
GELU_SCALE = 1.5957691216057308  # the float64 nearest 2 sqrt(2 / pi)
GELU_CUBIC = 0.044715


def exact_inputs(k: int, weight_levels: int) -> int:
    """``k``, the inputs of a weight product, once its sums are known exact in float32 (the
    halves of a row, |h| <= HALF / 2, times weights up to ``weight_levels``); else
    ValueError."""
    if (HALF // 2) * weight_levels * k >= F32_EXACT:
        raise ValueError(f"a {k}-input product would not be exact in float32")
    return k
