"""The transformer of a LLaMA-architecture or Gemma 3 model, its integer weights on a
device, and the arithmetic that computes it, chosen once.

The arithmetic (reference.py's interface) is where products and the work around them
happen: ``reference.Reference``, numpy's or CuPy's operations one at a time with
float32 GEMM products (the reference, and a GPU's), or ``compiled.Compiled``, 8-bit
integer products (onnxruntime) and compiled kernels (numba) on the CPU, 2.5 to 4 times
sooner.  Both give the same bits: every product multiplies integers whose sums are exact,
and every other operation is correctly rounded in an order the code fixes, so a row's
numbers depend only on its own token and its own stream's cache, never on the machine,
the arithmetic or which other rows share the step (context.py computes the steps).
"""

from __future__ import annotations

import numpy as np

from . import compiled, weights
from .device import CPU, Device
from .reference import Reference

_MATRICES = ("qkv", "o", "gate_up", "down")

#: How the weight products are computed: "int8" (onnxruntime and compiled kernels, the CPU
#: only) or "float32" (GEMM: the reference, and a GPU's); the same integers either way.
PRODUCTS = ("int8", "float32")


class Network:
    """The model's integer weights on a device (weights.load: read from a cache, made once
    per model file; or weights.seeded's) and its arithmetic, ``ops``.  ``products``:
    PRODUCTS' name, or None for int8 on the CPU where onnxruntime imports."""

    def __init__(self, arrays: dict, meta: dict, device: Device = CPU,
                 products: str | None = None):
        self.shape = s = weights.Shape(**meta["shape"])
        self.bos, self.pieces = meta["bos"], weights.unpack_pieces(arrays)
        self.n_vocab = s.vocab
        self.device = device
        if products is None:
            products = "int8" if device.xp is np and compiled.available() else "float32"
        if products not in PRODUCTS or (products == "int8" and device.xp is not np):
            raise ValueError(f"products={products!r}: one of {PRODUCTS} (int8 on the CPU only)")
        self.ops = compiled.Compiled() if products == "int8" else Reference()
        self.embed_scale = float(np.sqrt(np.float64(s.embd)))  # Gemma's (correctly rounded)
        graphs = meta.get("graph_files", {})  # the cache's graphs of 8-bit products
        with device.scope():
            put = device.put
            linear = lambda name: self.ops.linear(put(arrays[f"{name}.q"]),
                                                  put(arrays[f"{name}.scale"]),
                                                  graphs.get(f"{name}.q"))
            self.embedding = put(arrays["embedding"])  # exact Q8_0 values, (vocab, embd) float32
            self.output = linear("output")
            self.layers = []
            for i in range(s.layers):
                layer = {m: linear(f"{i}.{m}") for m in _MATRICES}
                layer.update({name: put(arrays[f"{i}.{name}"]) for name in weights.norms(s)})
                self.layers.append(layer)
            self.final_norm = put(arrays["output_norm"])
        # the KV cache per token: 8-bit keys and values, a float64 scale for each
        self.kv_bytes_per_token = s.layers * s.kv_heads * (2 * s.head_dim + 2 * 8)

    @property
    def products(self) -> str:
        """PRODUCTS' name of the arithmetic chosen."""
        return self.ops.products

    @classmethod
    def from_file(cls, path, device: Device = CPU, products: str | None = None) -> "Network":
        return cls(*weights.load(path), device, products)

    def norm(self, x: np.ndarray, gain: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """RMSNorm of rows, then 14-bit quantization: the operand of a weight product."""
        return self.ops.norm(x, gain, self.shape.eps)

    def normed(self, x: np.ndarray, gain: np.ndarray) -> np.ndarray:
        """RMSNorm of float64 rows (the last axis) as float64 (the arithmetic's ``normed``)."""
        return self.ops.normed(x, gain, self.shape.eps)
