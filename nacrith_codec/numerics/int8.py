"""Exact 8-bit matrix products on the CPU: onnxruntime's ``MatMulInteger``.

``Int8Matrix(w)`` holds a constant matrix of integers in [-127, 127] (int8), packed once
by onnxruntime, and multiplies rows of integers in [-64, 64] by it: the rows go in as
uint8 ``x + 64`` (0..128) and ``64 * column sums of w`` is taken off the int32 result,
exactly.  Every result is the exact integer product, whatever the kernel:

- VNNI, AMX and ARM's dot-product kernels accumulate into int32, and a row of K inputs
  sums to at most 128 * 127 * K (below 2**31 for K < 132,000);
- AVX2's ``vpmaddubsw`` adds pairs of uint8 x int8 products in int16 with saturation,
  which cannot saturate while the uint8 side is at most 128 and the int8 side within
  [-127, 127] (2 * 128 * 127 = 32,512 < 32,767).

Both bounds are checked, not assumed: the weights at construction, the rows by whatever
makes them (``__call__``, or kernels.split_rows for ``run``) (``BoundsError``).  These
are the same integers a float32 GEMM of the same operands computes whenever its sums
stay below 2**24 (the engine's float32 ``product``, and its reference), 3.8-4.2 times
sooner for SmolLM2 at a decoder's 8 to 32 rows (REFERENCE.md section 6; measured by
``python -m nacrith_codec.bench.products``).

Each session runs on one thread, the caller's: no thread pool that spins while it waits
(``session.intra_op.allow_spinning`` off as well), and callers that run several
products at once (a prefill's threads) each get a core.

A session is built from an onnx graph (``graph``): built here with the ``onnx`` package,
or read from a file the weights' cache keeps beside the matrix, whose values the graph
reads from the matrix's own ``.npy`` file (onnx's external data).  The cached graphs
spare a process onnx's import (0.6 s, most of it ml_dtypes) and a copy of every matrix.
"""

from __future__ import annotations

import importlib.util

import numpy as np

#: The largest magnitude of the weights (the int8 side) and of the rows (before the offset).
WEIGHT_LIMIT, ROW_LIMIT = 127, 64
OFFSET = ROW_LIMIT  # rows go in as x + OFFSET, 0 .. 128


class BoundsError(ValueError):
    """An operand outside the bounds that make the 8-bit product exact on every kernel."""


def available() -> bool:
    """Whether onnxruntime can be imported here, and onnx, which builds the graphs that
    no cache holds (found, not imported: a cached graph does not need it)."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return importlib.util.find_spec("onnx") is not None


class Int8Matrix:
    """``x @ w`` for float32 rows ``x`` (M, K) of integers in [-64, 64] and a constant
    ``w`` (K, N) of integers in [-127, 127]: the exact int32 product.  ``graph_file``:
    ``graph``'s file for ``w`` (the cache's, reading ``w``'s own file), else one is built."""

    def __init__(self, w: np.ndarray, graph_file: str | None = None):
        w8 = np.asarray(w)
        if w8.dtype != np.int8:
            w8 = w8.astype(np.int8)  # what does not fit wraps around: caught below
            if not np.array_equal(w8, w):
                raise BoundsError(f"8-bit product weights must be integers in "
                                  f"[-{WEIGHT_LIMIT}, {WEIGHT_LIMIT}]")
        if w8.min(initial=0) < -WEIGHT_LIMIT:
            raise BoundsError(f"8-bit product weights must be integers in [-{WEIGHT_LIMIT}, "
                              f"{WEIGHT_LIMIT}]")
        self._offset = OFFSET * w8.sum(axis=0, dtype=np.int32)  # (N,): exact in int32
        self._session = _session(graph_file or graph(*w8.shape, values=w8))
        self._run = _direct(self._session, w8.shape[0])

    @property
    def offset(self) -> np.ndarray:
        """What ``run``'s result holds beside the product: OFFSET times each column's sum."""
        return self._offset

    def __call__(self, x: np.ndarray) -> np.ndarray:
        shifted = x + np.float32(OFFSET)
        if shifted.min(initial=0) < 0 or shifted.max(initial=0) > 2 * ROW_LIMIT:
            raise BoundsError(f"8-bit product rows must be integers in [-{ROW_LIMIT}, "
                              f"{ROW_LIMIT}]")
        rows = shifted.astype(np.uint8)
        if not np.array_equal(rows, shifted):
            raise BoundsError("8-bit product rows must be integers")
        out = self.run(rows)
        out -= self._offset
        return out

    def run(self, rows: np.ndarray) -> np.ndarray:
        """The int32 product of uint8 ``rows`` by the matrix, ``offset`` not yet taken off
        (kernels.join_scaled does it on the way).  The rows' bound (0..128) is checked
        where they are made (``__call__``, kernels.split_rows), not again per product."""
        if rows.dtype != np.uint8:
            raise BoundsError("8-bit product rows must be uint8 (made by split_rows)")
        return self._run(rows)


def _direct(session, k: int):
    """``rows`` -> the product, through the session's binding without the Python wrapper's
    checks of names on every call (a step makes 121 products: about 1 ms of checks), where
    this onnxruntime has that binding and it gives the wrapper's result; else the wrapper."""
    def checked(rows):
        return session.run(None, {"x": rows})[0]
    inner = getattr(session, "_sess", None)
    try:
        probe = np.arange(2 * k, dtype=np.uint8).reshape(2, k) % 129
        if inner is None or not np.array_equal(inner.run(["y"], {"x": probe}, None)[0],
                                               checked(probe)):
            return checked
    except Exception:  # another onnxruntime: its public call
        return checked
    return lambda rows: inner.run(["y"], {"x": rows}, None)[0]


def graph(k: int, n: int, values: np.ndarray | None = None, location: str = "",
          offset: int = 0) -> bytes:
    """The onnx graph of one MatMulInteger of uint8 rows (M, k) by a constant int8 (k, n)
    matrix: ``values`` held in the graph, or read from the file ``location`` (beside the
    graph's file) at ``offset``, k * n bytes in C order."""
    from onnx import TensorProto, helper, numpy_helper

    if values is not None:
        w = numpy_helper.from_array(np.ascontiguousarray(values, np.int8), "w")
    else:
        w = TensorProto(name="w", data_type=TensorProto.INT8, dims=[k, n],
                        data_location=TensorProto.EXTERNAL)
        for key, value in (("location", location), ("offset", offset), ("length", k * n)):
            w.external_data.add(key=key, value=str(value))
    body = helper.make_graph(
        [helper.make_node("MatMulInteger", ["x", "w"], ["y"])], "int8_product",
        [helper.make_tensor_value_info("x", TensorProto.UINT8, ["rows", k])],
        [helper.make_tensor_value_info("y", TensorProto.INT32, ["rows", n])], [w])
    return helper.make_model(body, opset_imports=[helper.make_opsetid("", 13)]).SerializeToString()


def _session(model):
    """An onnxruntime session of ``graph``'s bytes or file (its weights a constant, packed
    once), on the caller's thread."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    options.log_severity_level = 3  # errors only
    # no arena per session: 121 of them kept about 600 MB of a prefill's outputs reserved
    options.enable_cpu_mem_arena = options.enable_mem_pattern = False
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
