"""``nacrith cluster``: compress or decompress many files over a Dask cluster.

    nacrith cluster DIR_OR_GLOB... -o DEST [--scheduler tcp://HOST:8786]
    nacrith cluster -d PACKED/ -o RESTORED/

Without ``--scheduler``, a LocalCluster of ``-T`` worker processes on this machine.
Exit status: 0 when every file succeeded, 1 when one failed (the report says which
and why), 2 bad usage, 130 interrupted, 143 terminated.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from nacrith_codec.cli import (add_codec_arguments, codec_options, complain, printable,
                               run_guarded, thread_count)
from nacrith_codec import key_values
from nacrith_codec.errors import NacrithError

from .dask_cluster import compress_files, connect, decompress_files


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="nacrith cluster",
        description="Compress (or with -d decompress) files, directories and globs of fsspec "
                    "URLs over a Dask cluster; NAME becomes DEST/NAME.nc.")
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="files, directories (every file below) or globs; paths or fsspec URLs")
    p.add_argument("-o", "--output", required=True, metavar="DEST",
                   help="destination folder (path or fsspec URL)")
    p.add_argument("-d", "--decompress", action="store_true", help="decompress .nc files")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="a Dask scheduler (default: a LocalCluster of -T workers)")
    p.add_argument("-T", "--workers", type=int, metavar="N",
                   help="LocalCluster worker processes (default: one per core)")
    p.add_argument("--threads", type=thread_count, metavar="N",
                   help="llama.cpp threads per task (default: the host's cores / its Dask threads)")
    existing = p.add_mutually_exclusive_group()
    existing.add_argument("-f", "--force", action="store_true", help="overwrite existing outputs")
    existing.add_argument("--skip-existing", action="store_true",
                          help="leave existing outputs alone (resume an interrupted run)")
    p.add_argument("--verify", action="store_true",
                   help="compressing: decode every block on its worker before keeping it")
    p.add_argument("--retries", type=int, default=2, metavar="N",
                   help="tries again a task that raised, e.g. a storage error (default 2)")
    p.add_argument("--send-inputs", action="store_true",
                   help="read the inputs here and send them to the workers (for paths only this "
                        "machine sees; default: workers read them, memory:// excepted)")
    p.add_argument("--report", metavar="FILE.json", help="write the report as JSON")
    p.add_argument("--storage-option", action="append", default=[], metavar="KEY=VALUE",
                   help="fsspec storage option for inputs and outputs (repeatable)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar, no report")
    p.add_argument("--model", metavar="GGUF", help="model file, at this path on every worker "
                   "(default: each worker's $NACRITH_MODEL or bundled model)")
    p.add_argument("--gpu-layers", type=int, default=0, metavar="N")
    p.add_argument("--device", default="cpu", metavar="DEVICE",
                   help="where each worker runs the exact engine: cpu, cuda, cuda:N or auto "
                        "(its GPU if it has one); the bytes are the same on each")
    add_codec_arguments(p)
    return p


def _storage_options(pairs) -> dict:
    options = {}
    for key, value in key_values.parse(pairs, "--storage-option").items():
        try:
            options[key] = json.loads(value)  # numbers, true/false, JSON objects
        except ValueError:
            options[key] = value
    return options


def _run(args) -> int:
    from fsspec.callbacks import NoOpCallback, TqdmCallback

    options = dict(client=None, workers=args.workers, model=args.model,
                   storage_options=_storage_options(args.storage_option),
                   existing="overwrite" if args.force else "skip" if args.skip_existing else "error",
                   retries=args.retries, threads=args.threads, n_gpu_layers=args.gpu_layers,
                   device=args.device,
                   ship_inputs=True if args.send_inputs else None)
    codec = codec_options(args)
    if args.decompress and (codec or args.verify):
        raise ValueError("compression parameters and --verify apply to compression only")
    quiet = logging.ERROR if args.quiet else logging.WARNING
    with connect(args.scheduler, args.workers, quiet) as client:
        if not args.quiet:
            print(f"nacrith: Dask dashboard: {client.dashboard_link}", file=sys.stderr)
        bar = NoOpCallback() if args.quiet else TqdmCallback(tqdm_kwargs=dict(
            unit="B", unit_scale=True, file=sys.stderr, dynamic_ncols=True, disable=None))
        options.update(client=client, callback=bar)
        try:
            if args.decompress:
                report = decompress_files(args.inputs, args.output, **options)
            else:
                report = compress_files(args.inputs, args.output, verify=args.verify, **options,
                                        **codec)
        finally:
            bar.close()
    if args.report:
        with open(args.report, "w") as f:
            f.write(report.to_json())
    if not args.quiet or not report.ok:
        lines = report.summary().splitlines()
        for line in lines if not args.quiet else [x for x in lines if ": failed: " in x]:
            print(printable(line), file=sys.stderr)  # file names come from anyone
    return 0 if report.ok else 1


def main(argv) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.workers is not None and args.workers < 1:
        parser.error("--workers must be at least 1")
    return run_guarded("nacrith cluster", lambda: _checked(args))


def _checked(args) -> int:
    try:
        return _run(args)
    except (NacrithError, OSError, ValueError) as exc:
        complain("nacrith cluster", None, exc)
        return 1
