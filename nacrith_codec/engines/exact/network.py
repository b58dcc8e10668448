"""The transformer of a LLaMA-architecture or Gemma 3 model, computed exactly.

Every matrix product multiplies integers whose partial sums stay below 2**24,
so float32 GEMM gives the one exact result on any BLAS, kernel, thread count
or GPU: 8-bit weights per output row (and keys and values per head) times
14-bit activations per token row (and queries per head), each activation cut
in two 7-bit halves, ``high * 128 + low``, that go through the product as two
rows of one GEMM (for a memory-bound product nearly free) and are joined
afterwards in float64.  On the CPU the weight products run on 8-bit integers
(numerics/int8.py: onnxruntime's MatMulInteger, the same integers 2.5-3.8 times
sooner); float32 GEMM stays their reference, and the GPU's.  Scales are applied with correctly rounded
multiplications in an order the code fixes, norms sum squares of integers (exact in any
order), and exp, sigmoid (so SiLU and GELU) and RoPE come from ``tables``.  A row's numbers
depend only on its own token and its own stream's cache: never on which other
rows share the step.  The same code runs with numpy on the CPU or CuPy on a GPU
(device.py: every operation here gives the same bits on both); each function takes
the array module of its arguments.
"""

from __future__ import annotations

import numpy as np

from . import weights
from ...numerics import int8, kernels, tables
from ...numerics.arrays import module_of
from .device import CPU, Device

ACT_LEVELS = 8191  # activations: integers in [-8191, 8191] times a scale per row
CACHE_LEVELS = 127  # keys and values: 8-bit integers times a scale per slot and head
HALF = 128  # an activation is high * HALF + low, |high|, |low| <= 64
NORM_LEVELS = 32767  # the integers whose squares give a row's RMS
F32_EXACT = 1 << 24


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


class Linear:
    """y = x W^T for 14-bit x rows and 8-bit W rows, exact: the halves of x (|h| <= 64)
    times W over K <= 2,048 inputs stay below 64 * 127 * 2,048 < 2**24.  With ``eight_bit``
    the product runs on 8-bit integers (int8.Int8Matrix: the same integers), and the
    halves, the join and the scaling around it in compiled kernels (the same bits)."""

    def __init__(self, q: np.ndarray, scale: np.ndarray, eight_bit: bool = False):
        self.q, self.scale = q, scale  # (K, N) integers as float32, (N,) float64
        if (HALF // 2) * weights.WEIGHT_LEVELS * q.shape[0] >= F32_EXACT:
            raise ValueError(f"a {q.shape[0]}-input product would not be exact in float32")
        self.int8 = int8.Int8Matrix(q) if eight_bit else None

    def __call__(self, xq: np.ndarray, xs: np.ndarray) -> np.ndarray:
        """The product of rows ``xq`` (float32 integers, or with ``eight_bit`` the uint8
        rows kernels.split_rows makes of them) scaled by ``xs`` per row."""
        if self.int8 is not None:  # the same operations, compiled (kernels.py)
            raw = self.int8.run(xq if xq.dtype == np.uint8 else kernels.split_rows(xq))
            return kernels.join_scaled(raw, self.int8.offset, xs, self.scale)
        acc = joined(product(halves(xq, 0), self.q), 0)
        return (acc * xs[:, None]) * self.scale[None, :]


_MATRICES = ("qkv", "o", "gate_up", "down")


#: How the weight products are computed: "int8" (onnxruntime, the CPU only) or "float32"
#: (GEMM: the reference, and a GPU's); the same integers either way.
PRODUCTS = ("int8", "float32")


class Network:
    """The model's integer weights on a device (weights.load: read from a cache, made once
    per model file; or weights.seeded's) and the arithmetic of one layer's parts.
    ``products``: PRODUCTS' name, or None for int8 on the CPU where onnxruntime imports."""

    def __init__(self, arrays: dict, meta: dict, device: Device = CPU,
                 products: str | None = None):
        self.shape = s = weights.Shape(**meta["shape"])
        self.bos, self.pieces = meta["bos"], weights.unpack_pieces(arrays)
        self.n_vocab = s.vocab
        self.device = device
        if products is None:
            products = "int8" if device.xp is np and int8.available() else "float32"
        if products not in PRODUCTS or (products == "int8" and device.xp is not np):
            raise ValueError(f"products={products!r}: one of {PRODUCTS} (int8 on the CPU only)")
        self.products = products
        # with 8-bit products, the work around them in compiled kernels (the same bits)
        self.compiled = eight_bit = products == "int8"
        self.embed_scale = float(np.sqrt(np.float64(s.embd)))  # Gemma's (correctly rounded)
        with device.scope():
            put = device.put
            self.embedding = put(arrays["embedding"])  # exact Q8_0 values, (vocab, embd) float32
            self.output = Linear(put(arrays["output.q"]), put(arrays["output.scale"]),
                                 eight_bit)
            self.layers = []
            for i in range(s.layers):
                layer = {m: Linear(put(arrays[f"{i}.{m}.q"]), put(arrays[f"{i}.{m}.scale"]),
                                   eight_bit) for m in _MATRICES}
                layer.update({name: put(arrays[f"{i}.{name}"]) for name in weights.norms(s)})
                self.layers.append(layer)
            self.final_norm = put(arrays["output_norm"])
        # the KV cache per token: 8-bit keys and values, a float64 scale for each
        self.kv_bytes_per_token = s.layers * s.kv_heads * (2 * s.head_dim + 2 * 8)

    @classmethod
    def from_file(cls, path, device: Device = CPU, products: str | None = None) -> "Network":
        return cls(*weights.load(path), device, products)

    def _inverse_rms(self, x: np.ndarray) -> np.ndarray:
        """1 / RMS of float64 rows (the last axis), from integer sums of squares."""
        n, xp = x.shape[-1], module_of(x)
        x16, unit = quantize(x, NORM_LEVELS)
        sq = x16.astype(np.float64)
        sums = (sq * sq).sum(axis=-1)  # integers below 2**53: exact in any order
        mean = (sums * (unit * unit)) / n
        return 1.0 / xp.sqrt(mean + self.shape.eps)

    def norm(self, x: np.ndarray, gain: np.ndarray,
             operand: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """RMSNorm of rows, then 14-bit quantization: (integers, scale per row); with
        ``operand``, the integers as the weight products take them (``Linear``)."""
        if operand and self.compiled and x.dtype == np.float64:
            return kernels.norm_split(x, gain, self.shape.eps)
        inv = self._inverse_rms(x)
        q, scale = quantize(x * gain)
        return q, scale * inv

    def quantized(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """14-bit quantization of float64 rows as the weight products take them."""
        return kernels.quantize_split(x) if self.compiled else quantize(x)

    def gated(self, gu: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The feed-forward block's gate times its up projection (``gu``'s halves),
        quantized as the down product takes it."""
        ffn, arch = self.shape.ffn, self.shape.arch
        if self.compiled:
            return kernels.gated_split(gu, ffn, arch == "gemma3")
        return quantize(activation(arch, gu[:, :ffn]) * gu[:, ffn:])

    def normed(self, x: np.ndarray, gain: np.ndarray) -> np.ndarray:
        """RMSNorm of float64 rows (the last axis) as float64: Gemma's norms of each head's
        queries and keys and of each block's outputs."""
        return (x * self._inverse_rms(x)[..., None]) * gain


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


#: GELU's tanh form, 0.5 x (1 + tanh(u)) = x sigmoid(2 u), u = sqrt(2 / pi) (x + 0.044715 x**3)
GELU_SCALE = 1.5957691216057308  # the float64 nearest 2 sqrt(2 / pi)
GELU_CUBIC = 0.044715


def activation(arch: str, g: np.ndarray) -> np.ndarray:
    """The gate's nonlinearity: SiLU (LLaMA) or GELU (Gemma), with tables' sigmoid."""
    if arch == "gemma3":
        return g * tables.sigmoid(GELU_SCALE * (g + ((GELU_CUBIC * g) * g) * g))
    return g * tables.sigmoid(g)
