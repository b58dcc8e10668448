"""Where the exact engine computes: numpy on the CPU, or CuPy on a CUDA GPU.

The engine's reference arithmetic (reference.py, the tables' lookups) is written
once against numpy's API and runs on whichever array module a ``Device`` holds;
no result depends on it, because every operation the engine uses gives one
answer on both.  Matrix products multiply integers whose partial sums stay
below 2**24, exact in cuBLAS's float32 GEMM as in any CPU BLAS (with TF32 or
even bfloat16 inputs too: every operand has at most 8 significant bits).
``+ - * /``, ``sqrt`` and ``rint`` are correctly rounded in CUDA as in IEEE-754
on a CPU, and CuPy runs each of numpy's elementwise functions as its own kernel,
so no multiply and add are fused into one differently rounded step.  Sums add
integers (exact in any order); the tables (numerics/tables.py) are computed on
the host and copied.  So a stream written on a GPU is the one written on a CPU,
byte for byte.

That is the reasoning; ``selfcheck.select`` tests it on every GPU before its
first use: a small network of the engine's own shape, with seeded random integer
weights, computed on the device and with numpy, must give the same bits, or the
device is refused with a ``DeviceError`` naming what differs.
"""

from __future__ import annotations

import contextlib

import numpy as np

from ...errors import NacrithError

DEVICES = ("cpu", "cuda", "auto")  # auto: the GPU when CuPy finds one, else the CPU
GPU_EXTRA = 'pip install "nacrith-codec[gpu]"'


class DeviceError(NacrithError):
    """The device asked for cannot run the exact engine (no CuPy, no GPU, or a GPU whose
    arithmetic differs from the CPU's, which would write streams nobody else can read)."""


class Device:
    """An array module and the copies between it and the host."""

    def __init__(self, name: str, xp, index: int = 0):
        self.name, self.xp, self.index = name, xp, index
        self.gpu = xp is not np

    def __repr__(self):
        return f"Device({self.name!r})"

    def put(self, array) -> "np.ndarray":
        """``array`` (numpy) on this device."""
        return self.xp.asarray(array) if self.gpu else np.asarray(array)

    def get(self, array) -> np.ndarray:
        """``array`` back on the host, as numpy."""
        return self.xp.asnumpy(array) if self.gpu else array

    def scope(self):
        """A context in which this device is CUDA's current one (nothing on the CPU)."""
        return self.xp.cuda.Device(self.index) if self.gpu else contextlib.nullcontext()

    def memory(self) -> dict:
        """Bytes in use on the device by this process's arrays (and its total), for reports."""
        if not self.gpu:
            return {}
        pool = self.xp.get_default_memory_pool()
        free, total = self.xp.cuda.runtime.memGetInfo()
        return {"device_bytes": int(pool.total_bytes()), "device_total": int(total),
                "device_free": int(free)}

CPU = Device("cpu", np)


def import_cupy():
    try:
        import cupy
    except ImportError as exc:
        raise DeviceError(f"device='cuda' needs CuPy, which cannot be imported here ({exc}): "
                          f"{GPU_EXTRA} (or the cupy-cuda* package of your CUDA version); "
                          "the CPU computes the same streams") from exc
    return cupy


def gpu_count() -> int:
    """CUDA devices CuPy can use here (0 without CuPy or a driver)."""
    try:
        import cupy
        return int(cupy.cuda.runtime.getDeviceCount())
    except Exception:  # no CuPy, no driver, no device: all mean none here
        return 0


def check_name(name) -> int:
    """The CUDA index ``name`` asks for (0 for "cuda", "auto" and "cpu"); ValueError unless
    it is one of DEVICES or "cuda:N"."""
    if isinstance(name, str):
        if name in DEVICES:
            return 0
        if name.startswith("cuda:") and name[5:].isdigit():
            return int(name[5:])
    raise ValueError(f"device must be one of {', '.join(DEVICES)} or cuda:N, not {name!r}")
