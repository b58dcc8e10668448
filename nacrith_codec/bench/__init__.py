"""``nacrith bench``: size, bits per byte and time beside classical codecs.

Every codec's output is decompressed and compared with the input, so a row
is a verified round trip.  Times are wall-clock on this machine; compare rows
of one run, not runs of different machines.

The measuring tools live here, beside the codec and outside its data path:
model_rate.py (``--raw``: the model alone over the codec's schedule), ablation.py
(``--ablation``: each predictor on recorded logits), chart.py (``--chart``) and
device.py (``python -m nacrith_codec.bench.device``: the exact engine on a GPU
against the CPU, with seeded weights of the model's architecture).
They run the codec's own schedule (pipeline/schedule.py), so they cannot drift
from what the codec does.
"""

from __future__ import annotations

import argparse
import bz2
import gzip
import lzma
import os
import resource
import sys
import time

from ..config import MODEL_ALONE, CodecConfig
from ..pipeline.stats import bits_per_byte


def _ppmd():
    import pyppmd  # a py7zr dependency: 7-Zip's PPMd (variant H), order 6, 16 MiB

    def enc(data):
        e = pyppmd.Ppmd7Encoder(6, 16 << 20)
        return len(data).to_bytes(8, "little") + e.encode(data) + e.flush()

    def dec(blob):
        n = int.from_bytes(blob[:8], "little")
        return pyppmd.Ppmd7Decoder(6, 16 << 20).decode(blob[8:], n)
    return enc, dec


def classical():
    from ..segments.classical import zstd
    enc, dec = _ppmd()
    return {
        "gzip -9": (lambda d: gzip.compress(d, 9, mtime=0), gzip.decompress),
        "bzip2 -9": (lambda d: bz2.compress(d, 9), bz2.decompress),
        "xz -9": (lambda d: lzma.compress(d, preset=9), lzma.decompress),
        "zstd -19": (lambda d: zstd.compress(d, level=19), zstd.decompress),
        "PPMd o6": (enc, dec),
    }


class _Nacrith:
    """nacrith as a bench codec, keeping the coder statistics of the last run."""

    def __init__(self, args, engine: str = CodecConfig.engine, model: str | None = None,
                 level: int | None = None):
        self.options = {k: v for k, v in (("model", model), ("threads", args.threads)) if v}
        if engine == "exact":
            self.options["device"] = args.device
        self.codec = dict(MODEL_ALONE) if args.model_alone else {}
        if level is not None:
            self.codec["preset"] = level
        self.engine = engine
        self.stats = {}

    def __iter__(self):  # (compress, decompress), like the classical entries
        return iter((self.compress, self.decompress))

    def compress(self, data):
        from ..api import NacrithCompressor
        c = NacrithCompressor(content_size=len(data), engine=self.engine, **self.codec,
                              **self.options)
        out = c.compress(data) + c.flush()
        self.stats = {"compress": c.stats}
        return out

    def decompress(self, blob):
        from ..api import decoder_of_streams
        streams = decoder_of_streams(**self.options)
        out = streams.decompress(blob)
        streams.finish()  # the codec's one rule for where input ends
        self.stats["decompress"] = streams.stats
        return out

    def report(self) -> str:
        c, d = self.stats.get("compress", {}), self.stats.get("decompress", {})
        parts = [f"{c.get('tokens', 0)} tokens"]
        if c.get("tokens"):
            parts.append(f"{c['model_steps'] / c['tokens']:.3f} model passes per token")
        if c.get("segments"):
            parts.append("bytes by method: " + " ".join(f"{k}={v}" for k, v in c["segments"].items()))
        for name, s in (("compress", c), ("decompress", d)):
            if s.get("seconds"):
                parts.append(f"{name} {s['tokens'] / s['seconds']:.1f} tokens/s")
                spent = [s.get(k, 0.0) for k in ("model_seconds", "predict_seconds",
                                                 "code_seconds")]
                if sum(spent):
                    parts.append(f"{name} model / predictors / coder "
                                 + " / ".join(f"{x:.1f}" for x in spent) + " s")
        if c.get("model_bits"):
            overhead = 100 * (c["coded_bits"] - c["model_bits"]) / c["model_bits"]
            parts.append(f"coding overhead {overhead:.3f}% over the model's "
                         f"{c['model_bits'] / 8:,.0f} bytes of cross-entropy")
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
        parts.append(f"peak RSS {peak} MiB")
        return ", ".join(parts)


def measure(name, codec, data, decompress=True) -> dict:
    enc, dec = codec
    start = time.perf_counter()
    blob = enc(data)
    row = {"codec": name, "size": len(blob), "bpb": bits_per_byte(len(data), len(blob)) or 0.0,
           "compress_s": time.perf_counter() - start, "decompress_s": None}
    if decompress:
        start = time.perf_counter()
        if dec(blob) != data:
            raise AssertionError(f"{name} did not round-trip")
        row["decompress_s"] = time.perf_counter() - start
    return row


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nacrith bench", description=__doc__.splitlines()[0])
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--model", help="model for nacrith: a name or file, or comma-separated "
                                    "names (smollm2-135m,gemma3-270m) for a row each")
    p.add_argument("--threads", type=int)
    p.add_argument("--no-decompress", action="store_true",
                   help="skip nacrith's decompression (halves the time; rows are not verified)")
    p.add_argument("--only-classical", action="store_true", help="leave nacrith out")
    p.add_argument("--ablation", action="store_true",
                   help="bpb of each online predictor alone and of all, on recorded logits, "
                        "and of the schedule's levers (4 streams, window 2,048)")
    p.add_argument("--raw", action="store_true",
                   help="llama.cpp's own rate over the codec's schedule beside the codec's, "
                        "with the skip on and off")
    p.add_argument("--streams", default="8",
                   help="with --raw: comma-separated stream counts to measure (default 8)")
    p.add_argument("--limit", type=int, metavar="BYTES",
                   help="measure only the first BYTES of each file")
    p.add_argument("--level", metavar="N[,N]",
                   help="comma-separated levels (1..9, as nacrith -N) for a row each")
    p.add_argument("--model-alone", action="store_true",
                   help="nacrith without its online predictors: the model's probabilities only")
    p.add_argument("--engine", default=CodecConfig.engine, metavar="NAMES",
                   help="comma-separated engines to measure nacrith with, one row each, in "
                        f"one run (default {CodecConfig.engine}; llama.cpp,exact compares them)")
    p.add_argument("--device", default="cpu",
                   help="where the exact engine computes: cpu, cuda, cuda:N or auto (its rows "
                        "only; the engine-only check of a GPU: python -m nacrith_codec.bench.device)")
    p.add_argument("--beside-load", action="store_true",
                   help="measure nacrith again alone and beside one CPU-bound process, and "
                        "print the ratio (fair share on 2 cores: 2x)")
    p.add_argument("--chart", metavar="PNG",
                   help="also draw bits per byte and speed per codec into PNG (needs matplotlib)")
    return p


def _models(args) -> list:
    """The models of the run: one (a name, a file or the default) or comma-separated names."""
    if args.model and "," in args.model and not os.path.exists(args.model):
        return args.model.split(",")
    return [args.model]


def _table(args, codecs) -> list:
    """Every codec on every file: the table's rows, printed as they come."""
    width = max([16] + [len(name) for name in codecs])
    print(f"{'file':24} {'codec':{width}} {'bytes':>10} {'bpb':>7} {'comp s':>9} {'decomp s':>9}")
    rows = []
    for path in args.files:
        with open(path, "rb") as f:
            data = f.read(args.limit) if args.limit else f.read()
        print(f"{os.path.basename(path):24} {'original':{width}} {len(data):10d}")
        for name, codec in codecs.items():
            verify = not (args.no_decompress and name.startswith("nacrith"))
            row = measure(name, codec, data, verify)
            rows.append(dict(row, original=len(data)))
            dtime = f"{row['decompress_s']:9.3f}" if row["decompress_s"] is not None else f"{'-':>9}"
            print(f"{'':24} {name:{width}} {row['size']:10d} {row['bpb']:7.3f} "
                  f"{row['compress_s']:9.3f} {dtime}", flush=True)
            if isinstance(codec, _Nacrith):
                print(f"{'':24}   ({codec.report()})", flush=True)
                if args.beside_load:
                    from .load import compare
                    print(f"{'':24}   ({compare(measure, name, codec, data, verify)})",
                          flush=True)
    return rows


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    problems = [f"{f}: {'is a directory' if os.path.isdir(f) else 'no such file'}"
                for f in args.files if not os.path.isfile(f)]
    if problems:
        for problem in problems:
            print(f"nacrith bench: {problem}", file=sys.stderr)
        return 1
    if args.raw or args.ablation:
        from ..engines import Engine
        from ..engines.model_file import resolve_model_path
        from . import ablation, model_rate
        models = _models(args)
        for model in models:
            path = resolve_model_path(model)
            if len(models) > 1:
                print(f"model {path.name}")
            if args.raw:
                streams = [int(b) for b in args.streams.split(",")]
                model_rate.run(args.files, Engine.get(path, kind="llama.cpp"), path, args.threads,
                               streams, args.limit)
            else:
                ablation.run(args.files, Engine.get(path), args.threads)
        return 0
    codecs = dict(classical())
    if not args.only_classical:
        engines, models = args.engine.split(","), _models(args)
        levels = [int(n) for n in args.level.split(",")] if args.level else [None]
        for model in models:
            for engine in engines:
                for level in levels:
                    name = ":".join(["nacrith"] + [model] * (len(models) > 1)
                                    + [engine] * (len(engines) > 1)
                                    + [f"-{level}"] * (level is not None))
                    codecs[name] = _Nacrith(args, engine, model, level)
    rows = _table(args, codecs)
    if args.chart:
        from .chart import draw
        draw(rows, args.chart, ", ".join(os.path.basename(f) for f in args.files))
        print(f"chart written to {args.chart}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
