"""Where the exact engine computes: numpy on the CPU, or CuPy on a CUDA GPU.

The engine's arithmetic (network.py, context.py, the tables' lookups) is written
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

That is the reasoning; ``select`` tests it on every GPU before its
first use: a small network of the engine's own shape, with seeded random integer
weights, computed on the device and with numpy, must give the same bits, or the
device is refused with a ``DeviceError`` naming what differs.
"""

from __future__ import annotations

import contextlib
import functools

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


def _cupy():
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


def select(name: str = "cpu") -> Device:
    """The device called ``name``: "cpu", "cuda" (or "cuda:N"), or "auto" (the first GPU
    when CuPy finds one, else the CPU).  A GPU is checked before it is returned."""
    index = check_name(name)
    if name == "cpu" or (name == "auto" and not gpu_count()):
        return CPU
    return _gpu(index)


@functools.lru_cache(maxsize=None)
def _gpu(index: int) -> Device:
    """CUDA device ``index``, once its arithmetic was found identical to numpy's (made and
    checked once per process; one that fails is not kept, and fails again if asked)."""
    cupy = _cupy()
    count = gpu_count()
    if index >= count:
        raise DeviceError(f"device cuda:{index} asked for, but CuPy finds {count} CUDA "
                          "device(s) here; use device='cpu' (the same streams) or another index")
    device = Device(f"cuda:{index}", cupy, index)
    from .selfcheck import compare
    with device.scope():
        differences = compare(device)
    if differences:
        raise DeviceError(
            f"{device.name} computes the exact engine's arithmetic differently from the "
            f"CPU ({'; '.join(differences)}): its streams would not decode elsewhere, so "
            "it is not used; use device='cpu' and please report this GPU and CuPy version")
    return device
