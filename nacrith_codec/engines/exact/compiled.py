"""The exact engine's arithmetic on the CPU at speed: the weight products on 8-bit
integers (numerics/int8.py: onnxruntime's MatMulInteger, the same integers as the float32
GEMM) and the work around them in compiled kernels (numerics/kernels.py: numba, the same
IEEE-754 operations in the same order as reference.py, fused into a few passes).  Every
result is the reference's bit for bit (tests/test_kernels.py, tests/test_exact.py); what
the kernels do not cover (float32 rows, the skip's older attention rule) is the
reference's own code.  An operand here is the uint8 rows the 8-bit product takes (each
14-bit row as its two 7-bit halves + 64) and a float64 scale per row.
"""

from __future__ import annotations

import numpy as np

from ...numerics import int8, kernels
from ...numerics.levels import exact_inputs
from .reference import Reference, rms_quantized
from .weights import WEIGHT_LEVELS


def available() -> bool:
    """Whether this arithmetic can run here: onnxruntime (and onnx) for the products,
    numba for the kernels.  Where either is missing the network computes with the
    reference's (the same bits, slower)."""
    return int8.available() and kernels.available()


class Linear:
    """``reference.Linear``'s product of 14-bit rows by 8-bit weights, on 8-bit integers:
    the rows' halves through int8.Int8Matrix, joined and scaled in a kernel.  Only
    onnxruntime's packed copy of the weights is kept (``q``, memory-mapped from the
    weights' cache, is let go), read from the cache's file by its graph where there is one."""

    def __init__(self, q: np.ndarray, scale: np.ndarray, graph_file: str | None = None):
        self.inputs = exact_inputs(q.shape[0], WEIGHT_LEVELS)  # the reference's bound
        self.scale = np.ascontiguousarray(scale, np.float64)
        self.int8 = int8.Int8Matrix(q, graph_file)
        self._run, self._offset = self.int8.run, self.int8.offset

    def __call__(self, xq: np.ndarray, xs: np.ndarray, dtype=np.float64) -> np.ndarray:
        """The product of an operand (uint8 rows, or float32 integer rows split here)."""
        raw = self._run(xq if xq.dtype == np.uint8 else kernels.split_rows(xq))
        return kernels.join_scaled(raw, self._offset, xs, self.scale, dtype)


class Compiled(Reference):
    products = "int8"

    def linear(self, q, scale, graph_file=None):
        return Linear(q, scale, graph_file)

    def norm(self, x, gain, eps):
        if x.dtype == np.float64:
            return kernels.norm_split(x, gain, eps)
        return rms_quantized(x, gain, eps)  # a LLaMA model's float32 embeddings

    def normed(self, x, gain, eps):
        return kernels.normed(x, gain, eps)

    def quantized(self, x):
        return kernels.quantize_split(x)

    def gated(self, gu, ffn: int, arch: str):
        return kernels.gated_split(gu, ffn, arch == "gemma3")

    def store(self, cache, q, k, v, turn, neox: bool, at):
        return kernels.rope_store(q, k, v, *turn, neox, *cache, at.host_seq, at.host_slot)

    def attend(self, cache, q, at, shape, window: int, sink: int, own_slots: bool):
        if not own_slots:  # format versions 6 and 7's skip streams: the reference's rule
            return super().attend(cache, q, at, shape, window, sink, own_slots)
        return kernels.attend(q, *cache, at.host_seq, at.host_slot, at.host_pos,
                              shape.heads // shape.kv_heads, 1.0 / np.sqrt(shape.head_dim),
                              window, sink)
