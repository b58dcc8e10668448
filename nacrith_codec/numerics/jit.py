"""numba's compilation of a module's kernels, on first use and once per process.

A module of kernels names its helpers (functions its kernels call) and its kernels, and
asks ``Kernels(globals(), helpers, kernels)[name]`` for a compiled one.  numba is
imported and everything compiled on the first such call (then read from numba's cache:
``NUMBA_CACHE_DIR``, else beside the module or in the user's cache), so a process that
never runs the kernels does not pay for them.  Compiled with ``fastmath`` off: LLVM then
contracts nothing into a fused multiply-add and reorders no floating-point sum, so a
kernel computes the IEEE-754 operations its source writes, in its order, as numpy does
them.  No ``parallel``: every kernel runs on its caller's thread (no thread pool), and
releases the GIL (``nogil``).
"""

from __future__ import annotations

import threading


def available() -> bool:
    """Whether numba, which compiles the kernels, can be imported here."""
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


class Kernels:
    """The kernels of a module, compiled on first use."""

    def __init__(self, namespace: dict, helpers: tuple, kernels: tuple):
        self._namespace, self._helpers, self._names = namespace, helpers, kernels
        self._compiled = None
        self._lock = threading.Lock()  # a prefill's threads may ask at once

    def __getitem__(self, name: str):
        if self._compiled is None:
            with self._lock:
                if self._compiled is None:
                    self._compiled = self._compile()
        return self._compiled[name]

    def _compile(self) -> dict:
        import numba

        def jit(function):
            options = dict(fastmath=False, nogil=True, error_model="numpy")
            try:
                return numba.njit(cache=True, **options)(function)
            except RuntimeError:  # no writable cache location here: compile in memory
                return numba.njit(**options)(function)

        # a kernel calls its helpers as module globals, so the compiled ones replace them
        for name in self._helpers:
            self._namespace[name] = jit(self._namespace[name])
        return {name: jit(self._namespace[name]) for name in self._names}
