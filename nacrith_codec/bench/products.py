"""The exact engine's weight products, 8-bit against float32, on this machine.

    python -m nacrith_codec.bench.products [--model NAME|GGUF] [--rows 8,16,32,64]

Every weight product of one step of the model (each layer's qkv, o, gate_up and down,
and the output layer), with seeded activation halves in [-64, 64] as the engine feeds
them, at each number of GEMM rows (two per token: a step of 8 streams is 16 rows):
milliseconds for the float32 GEMM (the engine's reference) and for onnxruntime's
MatMulInteger (numerics/int8.py, what the CPU runs), the best of ``--repeats``, every
result compared bit for bit first.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def _best(run, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def measure(network, arrays: dict, rows: int, repeats: int = 3,
            seed: int = 0) -> tuple[float, float]:
    """(float32 seconds, 8-bit seconds) of one step's weight products at ``rows`` rows
    (``arrays``: the network's weights, weights.load's, for the float32 products)."""
    from ..engines.exact.reference import product

    pairs = [(layer[m], arrays[f"{i}.{m}.q"]) for i, layer in enumerate(network.layers)
             for m in ("qkv", "o", "gate_up", "down")]
    pairs.append((network.output, arrays["output.q"]))
    linears, eights32 = zip(*pairs)
    floats32 = [np.asarray(q, np.float32) for q in eights32]  # the cache's int8 as float32
    rng = np.random.default_rng(seed)
    xs = [rng.integers(-64, 65, size=(rows, q.shape[0])).astype(np.float32) for q in floats32]
    for x, lin, q in zip(xs, linears, floats32):
        if not np.array_equal(lin.int8(x), product(x, q)):
            raise AssertionError("the 8-bit product differs from the float32 one")
    floats = _best(lambda: [product(x, q) for x, q in zip(xs, floats32)], repeats)
    eights = _best(lambda: [lin.int8(x) for x, lin in zip(xs, linears)], repeats)
    return floats, eights


def main(argv=None) -> int:
    from ..engines.exact import weights
    from ..engines.exact.network import Network
    from ..engines.model_file import resolve_model_path

    p = argparse.ArgumentParser(prog="python -m nacrith_codec.bench.products",
                                description=__doc__.splitlines()[0])
    p.add_argument("--model", help="a named model or a GGUF file (default: the bundled one)")
    p.add_argument("--rows", default="8,16,32,64", help="comma-separated GEMM row counts")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    arrays, meta = weights.load(resolve_model_path(args.model))
    network = Network(arrays, meta, products="int8")
    print(f"{'rows':>6} {'float32 ms':>11} {'8-bit ms':>9} {'ratio':>6}")
    for rows in (int(r) for r in args.rows.split(",")):
        floats, eights = measure(network, arrays, rows, args.repeats)
        print(f"{rows:6d} {floats * 1e3:11.1f} {eights * 1e3:9.1f} {floats / eights:5.2f}x",
              flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
