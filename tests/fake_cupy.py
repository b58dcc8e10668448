"""A stand-in for CuPy on machines without a GPU: numpy's arithmetic on arrays of
another type, strict like CuPy about mixing them with the host's.

The exact engine's device code (engines/exact/device.py) sees a module named
``cupy`` with one CUDA device.  Its arrays (``DeviceArray``) refuse to meet host
numpy arrays in an operation, as CuPy's do, so a host array that the engine forgot
to copy to the device, or a device array it forgot to copy back, fails here as it
would on a GPU.  The arithmetic is numpy's, so this proves the plumbing (what is
where, what comes back), not a GPU's rounding: that is tests/test_device.py's
real-GPU half, and the device's own check before its first use.
"""

from __future__ import annotations

import contextlib
import types

import numpy as np


class DeviceArray(np.ndarray):
    """An array on the fake device."""

    def __array_ufunc__(self, ufunc, method, *inputs, out=None, **kwargs):
        args = [_unwrap(x, ufunc.__name__) for x in inputs]
        if out is not None:
            kwargs["out"] = tuple(_unwrap(o, ufunc.__name__) for o in out)
        return _wrap(getattr(ufunc, method)(*args, **kwargs))

    def __array_function__(self, func, types_, args, kwargs):
        args = [_unwrap(x, func.__name__) for x in args]
        kwargs = {k: _unwrap(v, func.__name__) for k, v in kwargs.items()}
        return _wrap(func(*args, **kwargs))

    def __getitem__(self, index):
        _check_index(index)
        return _wrap(np.ndarray.__getitem__(self.view(np.ndarray), _unwrap(index, "index")))

    def __setitem__(self, index, value):
        _check_index(index)
        np.ndarray.__setitem__(self.view(np.ndarray), _unwrap(index, "index"),
                               _unwrap(value, "assignment"))

    def __array__(self, dtype=None, copy=None):
        raise TypeError("Implicit conversion to a NumPy array is not allowed (fake CuPy: "
                        "use cupy.asnumpy)")

    def __iter__(self):
        raise TypeError("iterating over a device array (fake CuPy)")


def _check_index(index):
    for part in index if isinstance(index, tuple) else (index,):
        if isinstance(part, np.ndarray) and not isinstance(part, DeviceArray) and part.ndim:
            raise TypeError("a host array indexes a device array (fake CuPy)")


def _unwrap(x, where):
    if isinstance(x, DeviceArray):
        return x.view(np.ndarray)
    if isinstance(x, np.ndarray) and x.ndim:
        raise TypeError(f"a host numpy array in a device operation ({where}; fake CuPy)")
    if isinstance(x, (list, tuple)):
        return type(x)(_unwrap(v, where) for v in x)
    return x


def _wrap(x):
    if isinstance(x, np.ndarray) and not isinstance(x, DeviceArray):
        return x.view(DeviceArray)
    if isinstance(x, (list, tuple)):
        return type(x)(_wrap(v) for v in x)
    return x


class _Device:
    current = 0

    def __init__(self, index=None):
        self.id = _Device.current if index is None else index

    def __enter__(self):
        self._previous, _Device.current = _Device.current, self.id
        return self

    def __exit__(self, *exc):
        _Device.current = self._previous


class _Pool:
    def total_bytes(self):
        return 0


def module(devices: int = 1) -> types.ModuleType:
    """A fresh fake ``cupy`` with ``devices`` CUDA devices."""
    fake = types.ModuleType("cupy")
    fake.__fake__ = True

    def asarray(a, dtype=None):
        if isinstance(a, DeviceArray):
            return a if dtype is None else a.astype(dtype)
        return np.array(a, dtype=dtype).view(DeviceArray)

    def asnumpy(a):
        return a.view(np.ndarray).copy() if isinstance(a, DeviceArray) else np.asarray(a)

    def get_array_module(*arrays):
        return fake if any(isinstance(a, DeviceArray) for a in arrays) else np

    def numpy_function(name):
        func = getattr(np, name)

        def on_device(*args, **kwargs):
            args = [_unwrap(a, name) for a in args]
            return _wrap(func(*args, **{k: _unwrap(v, name) for k, v in kwargs.items()}))
        return on_device

    fake.__getattr__ = numpy_function
    fake.asarray, fake.asnumpy, fake.get_array_module = asarray, asnumpy, get_array_module
    fake.ndarray = DeviceArray
    fake.get_default_memory_pool = _Pool
    fake.cuda = types.SimpleNamespace(
        Device=_Device,
        runtime=types.SimpleNamespace(getDeviceCount=lambda: devices,
                                      memGetInfo=lambda: (1 << 30, 1 << 30)))
    return fake


@contextlib.contextmanager
def installed(monkeypatch, devices: int = 1):
    """The fake as ``cupy`` (and the checked devices' cache emptied before and after)."""
    from nacrith_codec.engines.exact import selfcheck
    from nacrith_codec.engines import _engines
    monkeypatch.setitem(__import__("sys").modules, "cupy", module(devices))
    selfcheck._gpu.cache_clear()
    try:
        yield
    finally:
        selfcheck._gpu.cache_clear()
        for key in [k for k in _engines if k[3] != "cpu"]:
            del _engines[key]
