"""GGUF's block formats decoded to their exact values in float64.

Every value of these formats is a product (and for Q4_1 and Q4_K a difference) of
an fp16 scale, a small integer scale and a small integer, so float64 holds it
exactly and every machine derives the same numbers (the gguf package's own
dequantizers compute in float32, which rounds Q4_K's differences).  Each function
takes a tensor's raw bytes as (rows, bytes per row) uint8 and returns (rows, cols).
"""

from __future__ import annotations

import numpy as np

BLOCK = 32  # values per block of Q4_1, Q5_0 and Q8_0
SUPER = 256  # values per super-block of the K formats


def _f16(raw: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(raw).view(np.float16).astype(np.float64)  # exact


def _nibbles(packed: np.ndarray) -> np.ndarray:
    """Low nibbles then high nibbles of each run of bytes (the last axis)."""
    return np.concatenate([packed & 0x0F, packed >> 4], axis=-1)


def q4_1(data: np.ndarray, cols: int) -> np.ndarray:
    blocks = data.reshape(len(data), cols // BLOCK, 20)
    d, m = _f16(blocks[..., 0:2]), _f16(blocks[..., 2:4])
    return (d * _nibbles(blocks[..., 4:]) + m).reshape(len(data), cols)


def q5_0(data: np.ndarray, cols: int) -> np.ndarray:
    blocks = data.reshape(len(data), cols // BLOCK, 22)
    d = _f16(blocks[..., 0:2])
    high = np.unpackbits(blocks[..., 2:6], axis=-1, bitorder="little")  # bit j of value j
    q = _nibbles(blocks[..., 6:]).astype(np.int64) | (high.astype(np.int64) << 4)
    return (d * (q - 16)).reshape(len(data), cols)


def q8_0(data: np.ndarray, cols: int) -> np.ndarray:
    blocks = data.reshape(len(data), cols // BLOCK, 34)
    d = _f16(blocks[..., 0:2])
    return (d * np.ascontiguousarray(blocks[..., 2:]).view(np.int8)).reshape(len(data), cols)


def _scales_mins(packed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Q4_K's eight 6-bit scales and mins per super-block, from its 12 packed bytes."""
    low, mid, top = packed[..., 0:4], packed[..., 4:8], packed[..., 8:12]
    scales = np.concatenate([low & 0x3F, (top & 0x0F) | ((low >> 6) << 4)], axis=-1)
    mins = np.concatenate([mid & 0x3F, (top >> 4) | ((mid >> 6) << 4)], axis=-1)
    return scales.astype(np.float64), mins.astype(np.float64)


def q4_k(data: np.ndarray, cols: int) -> np.ndarray:
    blocks = data.reshape(len(data), cols // SUPER, 144)
    d, dmin = _f16(blocks[..., 0:2]), _f16(blocks[..., 2:4])
    scales, mins = _scales_mins(blocks[..., 4:16])  # (rows, supers, 8): one per 32 values
    qs = blocks[..., 16:].reshape(*blocks.shape[:2], 4, 32)  # 4 chunks of 64 values
    q = _nibbles(qs).reshape(*blocks.shape[:2], 8, 32)  # sub-block 2c: low, 2c + 1: high
    values = (d * scales)[..., None] * q - (dmin * mins)[..., None]
    return values.reshape(len(data), cols)


def q6_k(data: np.ndarray, cols: int) -> np.ndarray:
    blocks = data.reshape(len(data), cols // SUPER, 210)
    low = blocks[..., 0:128].reshape(*blocks.shape[:2], 2, 64).astype(np.int64)
    high = blocks[..., 128:192].reshape(*blocks.shape[:2], 2, 1, 32).astype(np.int64)
    scales = np.ascontiguousarray(blocks[..., 192:208]).view(np.int8).astype(np.float64)
    d = _f16(blocks[..., 208:210])
    # per half of 128 values: four runs of 32, low nibbles of bytes 0-31, 32-63, then high
    # nibbles of the same, each with 2 bits of ``high`` (shifted 0, 2, 4, 6)
    nib = np.stack([low[..., :32] & 15, low[..., 32:] & 15, low[..., :32] >> 4,
                    low[..., 32:] >> 4], axis=-2)  # (rows, supers, 2, 4, 32)
    bits = (high >> np.array([0, 2, 4, 6])[:, None]) & 3
    q = (nib | (bits << 4)) - 32
    scale = (d * scales).reshape(*blocks.shape[:2], 2, 4, 2, 1)  # one per 16 values
    values = scale * q.reshape(*blocks.shape[:2], 2, 4, 2, 16)
    return values.reshape(len(data), cols)


#: The formats read, by their GGUF names.
FORMATS = {"Q4_1": q4_1, "Q5_0": q5_0, "Q8_0": q8_0, "Q4_K": q4_k, "Q6_K": q6_k}
