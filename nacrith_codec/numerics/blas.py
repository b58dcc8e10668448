"""numpy's BLAS threads, limited for a while (threadpoolctl), shared by every user."""

from __future__ import annotations

import contextlib
import functools
import threading


@functools.lru_cache(maxsize=1)
def _controller():
    from threadpoolctl import ThreadpoolController
    return ThreadpoolController()


_blas_lock = threading.Lock()
_blas_users = [0, None]  # products running on one BLAS thread, and the limit they hold


@contextlib.contextmanager
def one_blas_thread():
    """numpy's BLAS on one thread while the block runs: for the neural cache's products
    (OpenBLAS's threads spin for a while after a multi-threaded call and starve
    llama.cpp's, whose next step then took 2.4 times as long: 8 streams, 2 cores,
    measured), and for the exact engine's passes split over threads of their own
    (engines/exact/context.py).  The limit is the process's, so threads doing either at
    once share one: the first in sets it, the last out restores it.  Speed only: every
    product under it is exact."""
    with _blas_lock:
        if not _blas_users[0]:
            _blas_users[1] = _controller().limit(limits=1, user_api="blas")
        _blas_users[0] += 1
    try:
        yield
    finally:
        with _blas_lock:
            _blas_users[0] -= 1
            if not _blas_users[0]:
                _blas_users[1].restore_original_limits()
