"""``python -m nacrith_codec.bench.device``: the exact engine on a device against the CPU.

Needs no model file: the network has the bundled model's architecture (30 blocks,
576 wide, 49,152 tokens) and seeded random integer weights, which is enough because
neither exactness nor speed depends on the weights' values.  Two parts, one run:

1. exactness: the digest of every step's logits and hidden states on the device and
   on the CPU, for each stream count of ``--check`` (streams joining late, rows
   sitting out steps, windows sliding), must be equal; the exit status is 1 if not;
2. speed: tokens per second of the engine's forward pass on the device (and on the
   CPU for the counts of ``--cpu-streams``) at each count of ``--streams``, after
   warm-up steps, with the device memory in use.

On a GPU machine without a package index, carry wheels of what CuPy's image lacks
(constriction and pyppmd; README of the device tool) and run, for example,
``python -m nacrith_codec.bench.device --device cuda --json $OUT/device.json``.
On a CPU (``--device cpu``) it rehearses the same run; the tests run it small.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time

from ..engines.exact import selfcheck, weights
from ..engines.exact.device import CPU
from ..engines.exact.selfcheck import select
from ..engines.exact.network import Network


def _counts(text: str) -> list[int]:
    return [int(n) for n in text.split(",") if n]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m nacrith_codec.bench.device",
                                description=__doc__.splitlines()[0])
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    p.add_argument("--check", default="1,64,512", type=_counts,
                   help="stream counts whose device results are compared with the CPU's")
    p.add_argument("--check-steps", type=int, default=6)
    p.add_argument("--streams", default="1,64,512,4096", type=_counts,
                   help="stream counts whose speed is measured on the device")
    p.add_argument("--cpu-streams", default="1,64", type=_counts,
                   help="stream counts whose speed is measured on the CPU too")
    p.add_argument("--steps", type=int, default=16, help="timed steps per count")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--window", type=int, default=64,
                   help="cache slots per stream (the caches of 4,096 streams of 1,024 "
                        "slots would need 190 GiB)")
    p.add_argument("--layers", type=int, default=weights.SMOLLM2.layers,
                   help="blocks of the network (fewer: a quicker rehearsal)")
    p.add_argument("--vocab", type=int, default=weights.SMOLLM2.vocab)
    p.add_argument("--json", metavar="FILE", help="write the results as JSON")
    return p


def _speed(network: Network, streams: int, args) -> dict:
    run = selfcheck.drive(network, streams, args.warmup + args.steps, args.window, seed=2,
                          warmup=args.warmup)
    seconds = max(run.seconds, 1e-9)
    return {"streams": streams, "tokens": run.tokens, "seconds": round(seconds, 4),
            "tokens_per_s": round(run.tokens / seconds, 1)}


def run(args) -> dict:
    device = select(args.device)
    shape = dataclasses.replace(weights.SMOLLM2, layers=args.layers, vocab=args.vocab)
    arrays, meta = weights.seeded(shape, seed=1)
    with device.scope():
        there = Network(arrays, meta, device)
    here = there if not device.gpu else Network(arrays, meta, CPU)
    out = {"device": device.name, "shape": dataclasses.asdict(shape), "window": args.window,
           "check": [], "speed": [], "cpu_speed": []}
    for streams in args.check:
        with device.scope():
            a = selfcheck.drive(there, streams, args.check_steps, window=16, seed=3)
        b = selfcheck.drive(here, streams, args.check_steps, window=16, seed=3)
        row = {"streams": streams, "tokens": a.tokens, "device": a.digest, "cpu": b.digest,
               "identical": a.digest == b.digest}
        out["check"].append(row)
        print(f"exactness  {streams:5d} streams  {a.tokens:7d} tokens  "
              f"{'identical' if row['identical'] else 'DIFFERENT'}  {a.digest}", flush=True)
    for streams in args.streams:
        with device.scope():
            row = _speed(there, streams, args)
        row.update(device.memory())
        out["speed"].append(row)
        print(f"{device.name:6} {streams:5d} streams  {row['tokens_per_s']:10.1f} tokens/s  "
              f"({row['tokens']} tokens in {row['seconds']:.2f} s)", flush=True)
    for streams in args.cpu_streams if device.gpu else []:
        row = _speed(here, streams, args)
        out["cpu_speed"].append(row)
        print(f"cpu    {streams:5d} streams  {row['tokens_per_s']:10.1f} tokens/s", flush=True)
    out["identical"] = all(row["identical"] for row in out["check"])
    return out


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    started = time.perf_counter()
    out = run(args)
    out["wall_s"] = round(time.perf_counter() - started, 1)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    if not out["identical"]:
        print("the device's results differ from the CPU's", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
