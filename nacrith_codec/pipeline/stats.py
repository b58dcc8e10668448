"""What a coder counts as it works, and the figures made of it.

Every front end reports through these: the command line's report line, ``nacrith
info``, the bench tables and the Dask runner's report.
"""

from __future__ import annotations


def new_stats() -> dict:
    """A block coder's statistics before its first block."""
    return {"tokens": 0, "model_steps": 0, "seconds": 0.0, "model_bits": 0.0, "coded_bits": 0,
            "model_seconds": 0.0, "predict_seconds": 0.0, "code_seconds": 0.0,
            "segments": {}}  # input bytes per coding method


def add_stats(total: dict, part: dict):
    """Add one coder's statistics into another's (parallel workers, concatenated streams)."""
    for key, value in part.items():
        if key == "segments":
            for name, n in value.items():
                total[key][name] = total[key].get(name, 0) + n
        else:
            total[key] = total.get(key, 0) + value


def bits_per_byte(original: int, packed: int) -> float | None:
    """Compressed bits per byte of the original (None for an empty original)."""
    return 8 * packed / original if original else None
