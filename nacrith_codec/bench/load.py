"""A codec's speed beside other work: its time with one CPU-bound process running
(``python -c "while True: pass"``) against its time alone, both measured warm, in one
run.  A codec inside 7z, fsspec or Dask jobs shares the machine; on 2 cores its fair
share beside one such process is half the machine, so 2x its time alone."""

from __future__ import annotations

import contextlib
import subprocess
import sys


@contextlib.contextmanager
def cpu_bound_process():
    """One process that takes a core for as long as the block runs."""
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        yield
    finally:
        hog.kill()
        hog.wait()


def compare(measure, *args) -> str:
    """``measure(*args)`` (a bench row) alone, then beside a CPU-bound process: one line."""
    alone = measure(*args)
    with cpu_bound_process():
        loaded = measure(*args)
    parts = []
    for key, name in (("compress_s", "compress"), ("decompress_s", "decompress")):
        if alone[key] is not None:
            parts.append(f"{name} {loaded[key]:.1f} s against {alone[key]:.1f} s alone, "
                         f"{loaded[key] / alone[key]:.2f}x")
    return "beside one CPU-bound process: " + "; ".join(parts)
