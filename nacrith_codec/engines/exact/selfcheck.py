"""The exact engine's arithmetic on a device, compared bit for bit with numpy's.

``drive`` feeds a network seeded random tokens through a schedule that exercises
what a codec's steps do: streams that join late, rows that skip a step (so a step's
rows are not one slice), windows that slide.  It returns the digest of every step's
logits and hidden states.  ``compare`` runs a small network of the real models'
kind on a device and on the CPU; ``select`` gives the device a name asks for, a GPU
only once it passed ``compare``; ``nacrith_codec.bench.device`` runs the full
architecture.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import time

import numpy as np

from ...numerics import tables
from . import weights
from .context import Context
from .device import CPU, Device, DeviceError, check_name, gpu_count, import_cupy
from .network import Network

#: The self-check's network: the real models' heads of 64 and RoPE base (their tables),
#: a product over 2 * 1,536 inputs (the largest bound), a few layers: milliseconds.
SMALL = dataclasses.replace(weights.SMOLLM2, layers=2, embd=192, ffn=1536, heads=3,
                            kv_heads=1, vocab=2048)


@dataclasses.dataclass
class Run:
    digest: str  # BLAKE2b of every step's logits and hidden states, in order
    tokens: int  # tokens fed
    seconds: float  # wall time of the steps (the device synchronized at the end)


def drive(network: Network, streams: int, steps: int, window: int = 32, seed: int = 0,
          warmup: int = 0) -> Run:
    """``steps`` steps of ``streams`` streams over ``network``, fed seeded random tokens:
    stream i joins at step i % 3 and every seventh stream sits out every third step.
    Tokens and seconds count from step ``warmup`` on (each step ends on the host, so the
    device has finished it)."""
    rng = np.random.default_rng(seed)
    ctx = Context(network, streams, window, slide=max(1, window // 4), sink=1)
    h = hashlib.blake2b(digest_size=16)
    fed = 0
    start = time.perf_counter()
    for t in range(steps):
        if t == warmup:
            fed, start = 0, time.perf_counter()
        rows = [i for i in range(streams) if i % 3 <= t and not (i % 7 == 6 and t % 3 == 2)]
        if not rows:
            continue
        tokens = rng.integers(0, network.n_vocab, size=len(rows))
        for row, token in zip(rows, tokens):
            ctx.waiting[row, 0], ctx.pending[row] = token, 1
        logits = ctx.step(rows)
        h.update(np.ascontiguousarray(logits).tobytes())
        h.update(np.ascontiguousarray(ctx.hidden).tobytes())
        fed += len(rows)
    seconds = time.perf_counter() - start if steps > warmup else 0.0
    ctx.close()
    return Run(h.hexdigest(), fed, seconds)


def _table_digest(device: Device) -> str:
    """The tables' lookups on ``device`` over their whole domains (subnormal results too)."""
    xp = device.xp
    grid = device.put(-np.linspace(0.0, 1100.0, 200003))
    h = hashlib.blake2b(digest_size=16)
    for values in (tables.exp(grid), tables.sigmoid(grid * 0.05),
                   tables.sigmoid(-grid * 0.05), tables.attention_weights(grid * 0.02)):
        h.update(np.ascontiguousarray(device.get(xp.asarray(values))).tobytes())
    return h.hexdigest()


def compare(device: Device, shape: weights.Shape = SMALL, streams: int = 9,
            steps: int = 40) -> list[str]:
    """What differs between ``device`` and the CPU (empty: nothing) on a seeded network of
    ``shape``."""
    arrays, meta = weights.seeded(shape, seed=1)
    differences = []
    if _table_digest(device) != _table_digest(CPU):
        differences.append("the tables' exp, sigmoid or attention weights")
    with device.scope():
        there = drive(Network(arrays, meta, device), streams, steps, window=16)
    here = drive(Network(arrays, meta, CPU), streams, steps, window=16)
    if there.digest != here.digest:
        differences.append("the logits or hidden states of a seeded network")
    return differences


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
    cupy = import_cupy()
    count = gpu_count()
    if index >= count:
        raise DeviceError(f"device cuda:{index} asked for, but CuPy finds {count} CUDA "
                          "device(s) here; use device='cpu' (the same streams) or another index")
    device = Device(f"cuda:{index}", cupy, index)
    with device.scope():
        differences = compare(device)
    if differences:
        raise DeviceError(
            f"{device.name} computes the exact engine's arithmetic differently from the "
            f"CPU ({'; '.join(differences)}): its streams would not decode elsewhere, so "
            "it is not used; use device='cpu' and please report this GPU and CuPy version")
    return device
