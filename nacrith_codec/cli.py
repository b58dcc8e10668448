"""The ``nacrith`` command: gzip/xz/zstd habits over the codec.

    nacrith FILE...            compress each FILE to FILE.nc (the input is kept, as zstd does)
    nacrith -d FILE.nc...      decompress
    nacrith -t FILE.nc...      test integrity (decode, verify, write nothing)
    nacrith -l FILE.nc...      list sizes and ratio without decoding (gzip -l, xz -l)
    nacrith -c / -o OUT / -    stdout, explicit output, stdin
    nacrith info FILE.nc       what a stream holds, without decoding it
    nacrith bench FILE...      nacrith beside gzip, bzip2, xz and PPMd (nacrith_codec/bench)
    nacrith cluster IN... -o DEST   many files over a Dask cluster (plugins/dask_cli.py)
    nacrith 7z a|x|l|t ARCHIVE.7z   7z archives (plugins/sevenzip_cli.py)
    nacrith cache [--clear]    what nacrith keeps on disk (cache.py), and removing it

Exit status: 0 success, 1 an error (the message says which file and why),
2 bad usage, 130 interrupted (^C), 143 terminated (SIGTERM).  Output is written
to a temporary file beside the target and renamed when complete, so an
interrupted run never leaves a file that looks finished (and ^C or SIGTERM
remove the temporary file; after SIGKILL a hidden ``.nacrith-*.part`` remains:
output.py).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import signal
import stat
import sys
import time
import warnings

from . import __version__
from .config import ENGINES, MODEL_ALONE, CodecConfig
from .container import SUFFIX, compressed_name, original_name
from .container.header import VERSION, WRITABLE, version_for
from .engines.model_file import MODELS
from .errors import CacheNotice, NacrithError
from .output import Output, special_file, write_all
from .pipeline.stats import bits_per_byte
from . import presets
from .presets import DEFAULT_LEVEL, LEVELS
_COMMANDS = ("compress", "decompress", "info", "bench", "cluster", "7z", "cache")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="nacrith", description="Lossless compression with a small language model.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="subcommands (each has --help):\n"
               "  nacrith info FILE.nc...           what each stream holds, without decoding\n"
               "  nacrith 7z a|x|l|t ARCHIVE.7z     7z archives of nacrith-compressed files\n"
               "  nacrith bench FILE...             nacrith beside gzip, bzip2, xz, zstd, PPMd\n"
               "  nacrith cluster INPUT... -o DEST  many files over a Dask cluster\n"
               "  nacrith cache [--clear|--prune]   what nacrith keeps on disk, and removing it\n"
               "  nacrith compress, nacrith decompress: the same as -z, -d\n\n"
               "environment: NACRITH_MODEL (--model), NACRITH_THREADS (--threads), "
               "NACRITH_MEMLIMIT (-M), NACRITH_CACHE_DIR (nacrith cache)")
    p.add_argument("files", nargs="*", metavar="FILE", help="input files ('-' or none: stdin)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("-z", "--compress", dest="compressing", action="store_true",
                      help="compress (the default)")
    mode.add_argument("-d", "--decompress", action="store_true", help="decompress")
    mode.add_argument("-t", "--test", action="store_true",
                      help="test integrity: decode and verify, write nothing")
    mode.add_argument("-l", "--list", action="store_true",
                      help="list each FILE.nc's sizes and ratio without decoding it (as gzip "
                           "-l and xz -l; `nacrith info` tells everything)")
    p.add_argument("-c", "--stdout", action="store_true",
                   help="write to standard output (several inputs: their streams concatenated)")
    p.add_argument("-o", "--output", metavar="OUT", help="write to OUT (one input only; '-': "
                   "standard output)")
    p.add_argument("-r", "--recursive", action="store_true",
                   help="operate on the files below each directory named")
    p.add_argument("-k", "--keep", action="store_true", help="keep input files (the default)")
    p.add_argument("--rm", action="store_true", help="remove input files after success")
    p.add_argument("-f", "--force", action="store_true",
                   help="overwrite existing outputs; compress files that already have the "
                        "suffix; write compressed data to a terminal")
    p.add_argument("-q", "--quiet", action="store_true", help="no report, no progress bar")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="compressing: also report gzip's and xz's sizes of the same input")
    p.add_argument("--verify", action="store_true",
                   help="compressing: decode the output as it is written and compare it with "
                        "the input before reporting success (about twice the time)")
    levels = p.add_mutually_exclusive_group()
    for n, level in LEVELS.items():
        levels.add_argument(f"-{n}", dest="level", action="store_const", const=n,
                            help=f"level {n}: {level.about}"
                                 + (" (the default)" if n == DEFAULT_LEVEL else ""))
    p.add_argument("--model", metavar="NAME|GGUF", help="a named model ("
                   + "; ".join(f"{m.name}: {m.about}" for m in MODELS.values())
                   + ") or a GGUF file (default: $NACRITH_MODEL, else smollm2-135m; "
                   "decompressing: the named model the stream names)")
    p.add_argument("--threads", type=thread_count, metavar="N",
                   help="threads per worker (speed only; default: $NACRITH_THREADS, else "
                        "cores / workers)")
    p.add_argument("--gpu-layers", type=int, default=0, metavar="N",
                   help="layers offloaded to the GPU (GPU builds of llama-cpp-python; the "
                        "decoder must offload the same)")
    p.add_argument("--device", default="cpu", metavar="DEVICE",
                   help="where the exact engine computes: cpu, cuda (cuda:N) or auto (a CUDA "
                        "GPU when CuPy finds one); the bytes are the same on each (pip install "
                        '"nacrith-codec[gpu]")')
    p.add_argument("-T", "--workers", type=int, default=1, metavar="N",
                   help="processes coding blocks at once, each loading the model (speed only)")
    p.add_argument("-M", "--memlimit", metavar="SIZE", type=_size,
                   help="decompressing: refuse streams that need more memory than SIZE per "
                        "process (such as 4GiB; 0: no limit; default: $NACRITH_MEMLIMIT, "
                        "else 1GiB)")
    add_codec_arguments(p)
    p.add_argument("-V", "--version", action="version", version=f"nacrith {__version__}")
    return p


def thread_count(text: str) -> int:
    """``--threads N``: an integer within llama.cpp's bounds (a usage error otherwise)."""
    from .engines.llamacpp import check_threads
    try:
        count = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    try:
        return check_threads(count)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _size(text: str) -> int:
    from .pipeline.memory import parse_size
    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


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
    g.add_argument("--cache-size", type=int, metavar="ENTRIES",
                   help="neural cache: the hidden states of the block's last ENTRIES tokens "
                        "(default 32768; 0: off)")
    g.add_argument("--cache-theta", type=int, metavar="T", help="neural cache sharpness (50)")
    g.add_argument("--engine", choices=ENGINES,
                   help="what computes the model's logits: exact (the default: integer "
                        "arithmetic every machine shares, so its streams decode on any "
                        "machine; SmolLM2 and Gemma 3) or llama.cpp (any GGUF model, but its "
                        "streams decode only with the same llama.cpp build and CPU features)")
    g.add_argument("--float-bits", type=int, choices=(32, 64),
                   help="precision of the predictors' arithmetic (default 32)")
    g.add_argument("--model-alone", action="store_true",
                   help="no online predictors: the language model's probabilities only")
    g.add_argument("--format-version", type=int, choices=WRITABLE, metavar="N",
                   help=f"write format version N ({', '.join(map(str, WRITABLE))}; default "
                        f"{VERSION}), for readers of older releases: the same predictions "
                        "in their framing (6: no neural cache, give --cache-size 0)")


def codec_options(args) -> dict:
    names = ("block_size", "streams", "window", "slide", "ngram_order", "match_min",
             "bias_rate_ppm", "mixer_rate_ppm", "skip_ppm", "cache_size", "cache_theta",
             "float_bits", "engine")
    options = {n: getattr(args, n) for n in names if getattr(args, n) is not None}
    if args.model_alone:
        options.update(MODEL_ALONE)
    if args.format_version is not None:
        options["format_version"] = args.format_version
    return options


def progress_bar(args, total):
    """A tqdm bar in bytes on standard error when it is a terminal (None with -q)."""
    if args.quiet:
        return None
    from tqdm import tqdm
    return tqdm(total=total, unit="B", unit_scale=True, file=sys.stderr, leave=False,
                disable=None, dynamic_ncols=True)


class _Classical:
    """gzip's and xz's sizes of the same input at their default levels (``-v``)."""

    def __init__(self):
        import lzma
        import zlib
        self._coders = {"gzip": zlib.compressobj(6, zlib.DEFLATED, 31), "xz": lzma.LZMACompressor()}
        self.sizes = dict.fromkeys(self._coders, 0)

    def update(self, chunk: bytes):
        for name, coder in self._coders.items():
            self.sizes[name] += len(coder.compress(chunk))

    def line(self, nacrith: int) -> str:
        for name, coder in self._coders.items():
            self.sizes[name] += len(coder.flush())
        return ", ".join(f"{name} {size} bytes ({size / max(nacrith, 1):.2f}x nacrith's)"
                         for name, size in self.sizes.items())


def _coder(args, size, progress):
    """The compressor, or the decoder of one or more concatenated streams."""
    from .api import NacrithCompressor, decoder_of_streams

    opts = {"model": args.model, "threads": args.threads, "progress": progress,
            "workers": args.workers, "n_gpu_layers": args.gpu_layers, "device": args.device}
    if args.decompress:
        return decoder_of_streams(**opts, memlimit=args.memlimit)
    return NacrithCompressor(content_size=size, verify=args.verify, preset=args.level, **opts,
                             **codec_options(args))


def _sink(args, dst, like):
    if args.test:
        return open(os.devnull, "wb")
    if dst is None:
        return contextlib.nullcontext(sys.stdout.buffer)
    if special_file(dst) is not None:  # /dev/null, a FIFO: written into, never replaced
        return open(dst, "wb")
    return Output(dst, overwrite=args.force, like=like, exists_hint="; use -f to overwrite it")


_TO_TERMINAL = "compressed data not written to a terminal (use -f to force)"


def _check_output(args, src_status, dst: str | None):
    """What gzip and xz refuse before any work: an output that is the input itself (the
    same device and inode: a link, ``./a``, a hard link), whatever -f says; compressed data
    to a terminal; a device other than a character device or FIFO; ``--rm`` with an
    output that does not keep the data (a device or FIFO)."""
    if dst is None:
        if not args.decompress and not args.test and sys.stdout.isatty() and not args.force:
            raise ValueError(_TO_TERMINAL)
        return
    try:
        out = os.stat(dst)
    except OSError:
        return  # nothing there yet (or unreachable: the output reports it)
    if src_status is not None and (out.st_dev, out.st_ino) == (src_status.st_dev,
                                                               src_status.st_ino):
        raise ValueError(f"the output {printable(dst)} is the input itself; nothing was done "
                         "(name another output)")
    special = special_file(dst)
    if special is None:
        return
    if not (stat.S_ISCHR(special.st_mode) or stat.S_ISFIFO(special.st_mode)):
        raise ValueError(f"the output {printable(dst)} is a block device or socket; nacrith "
                         "writes only into files, character devices and FIFOs")
    if args.rm:
        raise ValueError(f"--rm: the output {printable(dst)} is a device or FIFO, which does "
                         "not keep the data; the input was kept and nothing was done")
    if not args.decompress and not args.force and _is_terminal(dst):
        raise ValueError(_TO_TERMINAL)


def _is_terminal(path: str) -> bool:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_NOCTTY)
    except OSError:
        return False  # a FIFO with no reader yet: not a terminal
    try:
        return os.isatty(fd)
    finally:
        os.close(fd)


def _pump(args, fin, out, coder, bar, classical) -> tuple[int, int]:
    """Every input byte through ``coder`` into ``out``; (bytes read, bytes written)."""
    n_in = n_out = 0
    header = None
    while chunk := fin.read(1 << 20):
        n_in += len(chunk)
        if classical is not None:
            classical.update(chunk)
        data = coder.decompress(chunk) if args.decompress else coder.compress(chunk)
        if args.decompress and bar is not None and coder.header is not None \
                and coder.header is not header:
            header = coder.header  # a stream starts: its size joins the bar's total
            if header.content_size is not None:
                bar.total = (bar.total or 0) + header.content_size
                bar.refresh()
        write_all(out, data)
        n_out += len(data)
    tail = b""
    if args.decompress:
        coder.finish()  # the one rule for where input ends (container/sequence.py)
    else:
        tail = coder.flush()
    write_all(out, tail)
    out.flush()
    return n_in, n_out + len(tail)


def _code_file(args, src: str, dst: str | None):
    """Compress or decompress one input; returns the report line."""
    stdin = src == "-"
    fin = sys.stdin.buffer if stdin else open(src, "rb")
    status = _status(fin)
    like = None if stdin else status
    size = like.st_size if like is not None and stat.S_ISREG(like.st_mode) else None
    verify = args.verify and not args.decompress
    classical = _Classical() if args.verbose and not args.decompress else None
    start = time.perf_counter()
    coder = bar = None
    try:
        _check_output(args, status, dst)
        bar = progress_bar(args, None if args.decompress or size is None
                           else size * (2 if verify else 1))  # a verify decodes it all again
        coder = _coder(args, size, bar.update if bar is not None else None)
        with _sink(args, dst, like) as out:
            n_in, n_out = _pump(args, fin, out, coder, bar, classical)
    finally:
        if coder is not None:
            coder.close()  # worker processes, if any, stop now (at once after a failure)
        if bar is not None:
            bar.close()
        if not stdin:
            fin.close()
    report = _report(args, src, dst, n_in, n_out, coder.stats, time.perf_counter() - start)
    return report + (f"\n  beside: {classical.line(n_out)}" if classical is not None else "")


def _status(f) -> os.stat_result | None:
    try:
        return os.fstat(f.fileno())
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
        return None  # a standard input without a descriptor (an embedding program's)


def _report(args, src, dst, n_in, n_out, stats, seconds) -> str:
    original, packed = (n_out, n_in) if args.decompress else (n_in, n_out)
    bpb = bits_per_byte(original, packed) or 0.0
    rate = stats.get("tokens", 0) / seconds if seconds else 0.0
    name = "stdin" if src == "-" else printable(src)
    target = "OK (verified)" if args.test else "stdout" if dst is None else printable(dst)
    if args.verify and not args.decompress:
        target += " (verified)"
    methods = " ".join(f"{k} {v}" for k, v in stats.get("segments", {}).items())
    return (f"{name}: {n_in} -> {n_out} bytes, {bpb:.3f} bits/byte, "
            f"{stats.get('tokens', 0)} tokens at {rate:.1f} tokens/s"
            f"{_skipped(stats)}, {seconds:.1f} s"
            f"{f' (bytes by method: {methods})' if methods else ''} -> {target}")


def _skipped(stats) -> str:
    tokens, steps = stats.get("tokens", 0), stats.get("model_steps", 0)
    return f" ({tokens - steps} without the model)" if steps < tokens else ""


class _Skip(Exception):
    """An input left alone (exit status 1), reported in gzip's words without a class name."""


def _target(args, src: str) -> str | None:
    """The output file for ``src``, or None for standard output (and -t)."""
    if args.test or args.stdout or args.output == "-" or (src == "-" and not args.output):
        return None
    if src != "-" and os.path.isdir(src):
        raise IsADirectoryError(f"is a directory -- ignored (use -r to {_verb(args)} the "
                                "files below it)")
    if args.output:
        return args.output
    if not args.decompress:
        if src.endswith(SUFFIX) and not args.force:
            raise _Skip(f"already has {SUFFIX} suffix -- unchanged (use -f to compress it "
                        "again, -d to decompress it)")
        return compressed_name(src)
    original = original_name(src)
    if original is None:
        raise _Skip(f"unknown suffix -- ignored (expected {SUFFIX}); use -o to name the "
                    "output or -c to write to standard output")
    return original


def _verb(args) -> str:
    return "test" if args.test else "decompress" if args.decompress else "compress"


def _inputs(args) -> list[str]:
    """The files named, with -r the files below each directory named (compressing: those
    without the suffix; decompressing: those with it), in a stable order."""
    files = args.files or ["-"]
    if not args.recursive:
        return files
    out = []
    for name in files:
        if name == "-" or not os.path.isdir(name):
            out.append(name)
            continue
        for folder, dirs, names in os.walk(name):
            dirs.sort()
            for n in sorted(names):
                path = os.path.join(folder, n)
                if os.path.isfile(path) and not os.path.islink(path) and (
                        n.endswith(SUFFIX) == args.decompress):
                    out.append(path)
    return out


def usage_conflict(args, command: str | None) -> str | None:
    """What is contradictory in the options given, or None."""
    rules = [
        (command == "compress" and (args.decompress or args.test),
         "`nacrith compress` does not take -d or -t"),
        (command == "decompress" and args.compressing, "`nacrith decompress` does not take -z"),
        (args.keep and args.rm, "-k and --rm contradict each other"),
        (args.rm and args.test, "-t writes nothing, so --rm would lose the input"),
        (args.list and (args.rm or args.stdout or args.output is not None),
         "-l only lists; leave out --rm, -c and -o"),
        (args.rm and (args.stdout or args.output == "-"),
         "--rm with standard output: the input is kept when writing to standard output "
         "(as zstd does); leave out --rm"),
        (args.output is not None and args.stdout, "-o and -c contradict each other"),
        (args.output is not None and args.test, "-t writes nothing; leave out -o"),
        (args.output not in (None, "-") and (len(args.files) > 1 or args.recursive),
         "-o takes one input file (use -c to concatenate several)"),
        (args.recursive and "-" in (args.files or ["-"]),
         "-r needs directories or files, not standard input"),
        (args.workers < 1, "--workers must be at least 1"),
    ]
    return next((message for broken, message in rules if broken), None)


def codec_problem(args) -> str | None:
    """Why the compression parameters given (beside the level) make no stream, or None: a
    usage error, said once before any input is read (as ``--streams 0``)."""
    options = codec_options(args)
    version = options.pop("format_version", None)
    if args.level is not None:
        options = presets.apply(args.level, None, options)[1]
    try:
        version_for(CodecConfig().replace(**options), version)
    except ValueError as exc:
        return str(exc)
    return None


def threads_problem(args) -> str | None:
    """Why ``$NACRITH_THREADS`` names no thread count, when ``--threads`` is not given and
    it is what the coders would use (a usage error before any input is read), or None."""
    from .engines.llamacpp import chosen_threads
    try:
        chosen_threads(args.threads)
    except ValueError as exc:
        return str(exc)
    return None


def _main_code(args) -> int:
    status = 0
    for src in _inputs(args):
        dst = ""
        try:
            dst = _target(args, src)
            if src == "-" and args.decompress and sys.stdin.isatty() and not args.force:
                raise ValueError("compressed data not read from a terminal (use -f to force)")
            report = _code_file(args, src, dst)
            if args.rm and src != "-":
                os.unlink(src)  # only now: the output is complete, flushed and renamed
            if not args.quiet:
                print(report, file=sys.stderr)
        except _Skip as exc:
            print(f"nacrith: {printable(src)}: {exc}", file=sys.stderr)
            status = 1
        except BrokenPipeError as exc:
            if dst is None:
                raise  # whoever read standard output left: run_guarded ends quietly
            complain("nacrith", src, exc)
            status = 1
        except (NacrithError, OSError, ValueError) as exc:
            complain("nacrith", src, exc)
            status = 1
    return status


def _streams_of(path: str) -> tuple[list, int]:
    """(what ``nacrith info`` tells of each stream in ``path`` ('-': standard input), the
    file's size), read without decoding."""
    from .container.inspect import streams_info
    if path == "-":
        data = sys.stdin.buffer.read()
    else:
        with open(path, "rb") as f:
            data = f.read()
    return streams_info(data), len(data)


def _described(paths, failed: list):
    """(path, its streams as ``nacrith info`` tells them, its size) of each of ``paths``
    that reads as streams; each that does not is reported and added to ``failed``."""
    for path in paths:
        try:
            streams, size = _streams_of(path)
        except (NacrithError, OSError) as exc:
            complain("nacrith", path, exc)
            failed.append(path)
            continue
        yield path, streams, size


def _main_list(files) -> int:
    """``-l``: one line per file in xz -l's columns, and the totals of several."""
    print(f"{'streams':>7} {'blocks':>6} {'compressed':>12} {'uncompressed':>12} {'ratio':>6}  "
          f"{'engine':9} filename")
    failed, rows = [], []

    def line(streams, blocks, packed, size, engine, name):
        ratio = f"{packed / size:6.3f}" if size else f"{'-':>6}"
        print(f"{streams:7d} {blocks:6d} {packed:12,d} {size:12,d} {ratio}  {engine:9} "
              f"{printable(name)}")

    for path, streams, packed in _described(files or ["-"], failed):
        row = (len(streams), sum(s["blocks"] for s in streams), packed,
               sum(s["original_size"] for s in streams))
        rows.append(row)
        line(*row, ",".join(sorted({s["engine"] for s in streams})), path)
    if len(rows) > 1:
        line(*(sum(column) for column in zip(*rows)), "", f"{len(rows)} files")
    return 1 if failed else 0


def _main_cache(argv) -> int:
    """``nacrith cache``: what nacrith keeps on disk; ``--clear`` or ``--prune`` removes it."""
    from . import cache
    from .engines.model_file import named_by_sha256
    p = argparse.ArgumentParser(prog="nacrith cache", description=cache.__doc__.splitlines()[0])
    which = p.add_mutually_exclusive_group()
    which.add_argument("--clear", action="store_true",
                       help="remove everything nacrith keeps (made again when needed)")
    which.add_argument("--prune", action="store_true",
                       help="remove only what earlier releases left and this one does not read")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    args = p.parse_args(argv)
    base = cache.root()
    if args.clear or args.prune:
        gone = cache.removable(old_only=args.prune)
        freed = cache.remove(gone)
        print(f"nacrith cache: removed {len(gone)} item(s) from {printable(str(base))}, "
              f"{cache.mb(freed)} freed")
        return 0
    found = cache.entries()
    if args.json:
        print(json.dumps({"root": str(base), "entries": [
            {"path": str(e.path), "bytes": e.size, "what": e.what, "used": e.used,
             "model_sha256": e.model_sha256}
            for e in found]}))
        return 0
    print(f"{printable(str(base))} ({cache.ENV} or XDG_CACHE_HOME moves it)")
    for e in found:
        what = e.what
        if e.model_sha256:
            named = named_by_sha256(e.model_sha256)
            what = f"{named.name if named else 'model ' + e.model_sha256[:16]}'s {what}"
        print(f"{cache.mb(e.size):>12}  {printable(str(e.path.relative_to(base)))}: {what}")
    old = sum(e.size for e in found if not e.used)
    print(f"{cache.mb(sum(e.size for e in found)):>12}  in all"
          + (f"; {cache.mb(old)} of it left by earlier releases (nacrith cache --prune)"
             if old else "") + "; nacrith cache --clear removes everything")
    return 0


def _main_info(argv) -> int:
    p = argparse.ArgumentParser(prog="nacrith info", description="Describe nacrith streams.")
    p.add_argument("files", nargs="+", metavar="FILE.nc", help="'-': standard input")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    args = p.parse_args(argv)
    failed = []
    for path, streams, _ in _described(args.files, failed):
        if args.json:
            print(json.dumps({"file": path, "streams": streams}))
            continue
        print(f"{printable(path)}:" + (f" {len(streams)} streams" if len(streams) > 1 else ""))
        for n, info in enumerate(streams, 1):
            if len(streams) > 1:
                print(f"  stream {n} at offset {info['offset']}:")
            _print_stream(info, "    " if len(streams) > 1 else "  ")
    return 1 if failed else 0


def _print_stream(info: dict, indent: str):
    for key, value in info.items():
        if key == "offset":
            continue
        if key in ("config", "bytes_by_method"):
            value = " ".join(f"{k}={v}" for k, v in value.items())
        elif key == "environment":
            value = json.dumps(value) if value else "none (its logits depend on none)"
        elif key == "bpb" and value is not None:
            value = f"{value:.4f}"
        print(f"{indent}{key:16} {printable(str(value))}")


def printable(text: str) -> str:
    """``text`` with what a terminal would interpret (escape sequences, control
    characters, a newline that would forge a report line) shown escaped, as ``--json``
    does: file names come from anyone, and a stream's fields and the messages about them
    from its writer."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape",
                                                      "backslashreplace").decode("ascii")
                   for c in text)


def complain(prog: str, name: str | None, exc: BaseException):
    """The one line an error is reported in, escaped: program, file (if any), and the
    exception's class and message; for a file the system could not open, read or write,
    that file and the system's words, as gzip says them (``nacrith: a.txt: No such file
    or directory``)."""
    if isinstance(exc, OSError) and exc.strerror and isinstance(exc.filename, str):
        name, text = exc.filename, exc.strerror
    else:
        text = f"{type(exc).__name__}: {exc}"
    where = f"{printable(name)}: " if name is not None else ""
    print(f"{prog}: {where}{printable(text)}", file=sys.stderr)


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
    command = argv.pop(0) if argv and argv[0] in _COMMANDS else None
    if command == "info":
        return run_guarded("nacrith", lambda: _main_info(argv))
    if command == "bench":
        from .bench import main as bench_main  # the measuring tools, outside the data path
        return bench_main(argv)
    if command == "cluster":
        return _main_cluster(argv)
    if command == "cache":
        return run_guarded("nacrith", lambda: _main_cache(argv))
    if command == "7z":
        from .plugins.sevenzip_cli import main as sevenzip_main
        return sevenzip_main(argv)
    parser = _parser()
    args = parser.parse_args(argv)
    problem = usage_conflict(args, command) or codec_problem(args) or threads_problem(args)
    if problem:
        parser.error(problem)
    if args.list:
        return run_guarded("nacrith", lambda: _main_list(args.files))
    args.decompress = args.decompress or args.test or command == "decompress"
    return run_guarded("nacrith", lambda: _main_code(args))


def run_guarded(prog: str, work) -> int:
    """``work()``'s exit status, or 130 after ^C and 143 after SIGTERM, both turned into
    exceptions so that every cleanup runs (temporary outputs removed, workers stopped).
    Warnings (a rebuilt cache) are printed as the program's own lines."""
    warnings.formatwarning = lambda message, category, *_, **__: (
        f"{prog}: {'note' if category is CacheNotice else category.__name__}: {message}\n")
    previous = _on_sigterm()
    try:
        return _flushed(work())
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader of standard output left (`| head`): as gzip, quietly
        _drop_stdout()
        return 128 + signal.SIGPIPE
    except _Terminated:
        print(f"{prog}: terminated", file=sys.stderr)
        return 128 + signal.SIGTERM
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _flushed(status: int) -> int:
    """``status``, or 1 when standard output cannot take what is still buffered for it
    (a full disk): Python would otherwise fail that flush at exit with status 120."""
    if sys.stdout is None:  # started without one
        return status
    try:
        sys.stdout.flush()
    except OSError as exc:
        if isinstance(exc, BrokenPipeError):
            _drop_stdout()
            return 128 + signal.SIGPIPE
        print(f"nacrith: standard output: {type(exc).__name__}: {exc}", file=sys.stderr)
        _drop_stdout()
        return status or 1
    return status


def _drop_stdout():
    """What is still buffered for standard output is dropped, not retried at exit (where
    Python would print a traceback for a closed pipe, or exit 120 for a full disk)."""
    with contextlib.suppress(OSError, ValueError, io.UnsupportedOperation):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


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
