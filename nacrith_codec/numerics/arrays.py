"""Which array module an array belongs to (numpy, or CuPy on a GPU), and device copies
of the host's tables, so that one function computes wherever its argument lives."""

from __future__ import annotations

import sys

import numpy as np

_copies: dict = {}  # (table's id, module, CUDA device) -> (the table, its copy there)


def module_of(array):
    """numpy, or CuPy for a CuPy array (without importing CuPy where nobody has)."""
    cupy = sys.modules.get("cupy")
    return cupy.get_array_module(array) if cupy is not None else np


def on(xp, table: np.ndarray):
    """A table (numpy, made once) in array module ``xp``: itself for numpy, else a copy
    on the current CUDA device, made on first use."""
    if xp is np:
        return table
    key = (id(table), xp.__name__, int(xp.cuda.Device().id))
    if key not in _copies:
        _copies[key] = (table, xp.asarray(table))  # holding the table keeps its id unique
    return _copies[key][1]
