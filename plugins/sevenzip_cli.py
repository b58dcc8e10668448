"""``nacrith 7z``: 7z archives of nacrith-compressed files, with 7-Zip's verbs.

    nacrith 7z a ARCHIVE.7z FILE|DIR...      add files (creates the archive, or appends)
    nacrith 7z x ARCHIVE.7z [-o DIR] [NAME...]   extract with full paths
    nacrith 7z l ARCHIVE.7z                  list
    nacrith 7z t ARCHIVE.7z                  test: decode every member, check its CRC

7-Zip itself lists these archives but cannot extract them (its codecs do not
include nacrith), and ``python -m py7zr`` does not load plugins: this command
is py7zr with the nacrith filter registered.  ``-p PASSWORD`` encrypts (7zAES
after nacrith) or decrypts.  Exit status as 7-Zip's: 0 no error, 2 fatal
error, 7 command line error, 255 stopped by the user (^C, SIGTERM).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pathlib
import sys
import time

import py7zr
from py7zr.callbacks import ExtractCallback

from nacrith_codec.cli import add_codec_arguments, codec_options, progress_bar, run_guarded
from nacrith_codec.errors import NacrithError

from .sevenzip import FILTER_NACRITH

OK, FATAL, USAGE, STOPPED = 0, 2, 7, 255


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nacrith 7z", description=__doc__.splitlines()[0],
                                epilog="exit status: 0 no error, 2 fatal error, "
                                       "7 command line error, 255 stopped by the user")
    p.add_argument("verb", choices=("a", "x", "l", "t"), help="add, extract, list, test")
    p.add_argument("archive", metavar="ARCHIVE.7z")
    p.add_argument("names", nargs="*", metavar="NAME",
                   help="a: files and directories to add; x: members to extract (default all)")
    p.add_argument("-o", "--output-dir", metavar="DIR", default=".", help="x: extract into DIR")
    p.add_argument("-p", "--password", help="encrypt (a) or decrypt with PASSWORD")
    p.add_argument("-y", "--yes", action="store_true",
                   help="x: overwrite files that exist (refused otherwise)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar, no summary")
    p.add_argument("--model", metavar="GGUF", help="a: model file (default: the bundled one)")
    add_codec_arguments(p)
    return p


@contextlib.contextmanager
def _bar(args, total):
    """The command line's progress bar (None with -q), closed at the end."""
    bar = progress_bar(args, total)
    try:
        yield bar
    finally:
        if bar is not None:
            bar.close()


class _Progress(ExtractCallback):
    """py7zr's extraction events onto a progress bar of original bytes."""

    def __init__(self, bar):
        self.bar = bar

    def report_update(self, decompressed_bytes):
        self.bar.update(int(decompressed_bytes))

    def report_start_preparation(self): pass  # noqa: E704
    def report_start(self, processing_file_path, processing_bytes): pass  # noqa: E704
    def report_end(self, processing_file_path, wrote_bytes): pass  # noqa: E704
    def report_warning(self, message): print(f"nacrith 7z: {message}", file=sys.stderr)  # noqa: E704
    def report_postprocess(self): pass  # noqa: E704


def _add(args) -> str:
    if not args.names:
        raise _Usage("a needs files or directories to add")
    missing = [n for n in args.names if not os.path.exists(n)]
    if missing:
        raise FileNotFoundError(f"nothing to add: {', '.join(missing)} not found")
    sizes = sum(os.path.getsize(os.path.join(d, f)) for n in args.names
                for d, _, fs in (os.walk(n) if os.path.isdir(n) else [("", [], [n])]) for f in fs)
    mode = "a" if os.path.exists(args.archive) else "w"
    with _bar(args, sizes) as bar:
        nacrith = {"id": FILTER_NACRITH, **codec_options(args),
                   **({"model": args.model} if args.model else {}),
                   **({"progress": bar.update} if bar is not None else {})}
        filters = [nacrith] + ([{"id": py7zr.FILTER_CRYPTO_AES256_SHA256}] if args.password else [])
        with py7zr.SevenZipFile(args.archive, mode, filters=filters, password=args.password) as z:
            for name in args.names:
                arcname = os.path.basename(os.path.normpath(name))
                z.writeall(name, arcname) if os.path.isdir(name) else z.write(name, arcname)
    return f"{len(args.names)} item(s) added to {args.archive}: {os.path.getsize(args.archive)} bytes"


def _extract(args) -> str:
    with py7zr.SevenZipFile(args.archive, password=args.password) as z:
        members = [m for m in z.list() if not args.names or m.filename in args.names]
        unknown = set(args.names) - {m.filename for m in members}
        if unknown:
            raise FileNotFoundError(f"not in the archive: {', '.join(sorted(unknown))}")
        files = [path for m, path in _targets(members, args.output_dir) if not m.is_directory]
        exist = [path for path in files if os.path.lexists(path)]  # a dangling link too
        if exist and not args.yes:
            shown = [os.path.relpath(path, args.output_dir) for path in exist[:5]]
            raise FileExistsError(f"{', '.join(shown)}{' ...' if len(exist) > 5 else ''} "
                                  f"already exist in {args.output_dir}; use -y to overwrite them")
        new = [path for path in files if path not in exist]  # all a failure may remove
        with _bar(args, sum(m.uncompressed for m in members)) as bar:
            try:
                progress = _Progress(bar) if bar is not None else None
                if args.names:
                    z.extract(args.output_dir, targets=[m.filename for m in members],
                              callback=progress)
                else:
                    z.extractall(args.output_dir, callback=progress)
            except BaseException:  # py7zr leaves members empty or partial: remove ours
                for path in new:
                    with contextlib.suppress(OSError):
                        os.unlink(path)
                raise
    return f"{len(members)} item(s) extracted into {args.output_dir}"


def _targets(members, output_dir) -> list[tuple]:
    """(member, the path py7zr writes it to) for ``members`` in archive order: the name
    made safe by py7zr's own rule (a leading ``/`` dropped, names that leave the folder
    refused), and a repeated name numbered as py7zr's extraction numbers it (the second
    ``a`` is written as ``a_0``, the third as ``a_1``).  The one place that knows where
    extraction writes: the overwrite check and the cleanup after a failure use it alike
    (tests/test_py7zr.py checks it against what py7zr writes)."""
    from py7zr.helpers import get_sanitized_output_path

    base = pathlib.Path(output_dir)
    base = base if base.is_absolute() else pathlib.Path.cwd() / base
    seen: dict[str, int] = {}
    out = []
    for m in members:
        if m.filename in seen:
            name = f"{m.filename}_{seen[m.filename]}"
            seen[m.filename] += 1
        else:
            name, seen[m.filename] = m.filename, 0
        out.append((m, str(get_sanitized_output_path(name, base))))
    return out


def _list(args) -> str:
    with py7zr.SevenZipFile(args.archive, password=args.password) as z:
        members = z.list()
    print(f"{'modified':19} {'size':>12} {'crc32':>8}  name")
    for m in members:
        when = m.creationtime.strftime("%Y-%m-%d %H:%M:%S") if m.creationtime else ""
        crc = f"{m.crc32:08x}" if m.crc32 is not None else ""
        print(f"{when:19} {m.uncompressed if not m.is_directory else 'D':>12} {crc:>8}  {m.filename}")
    total = sum(m.uncompressed for m in members)
    return f"{len(members)} item(s), {total} bytes, archive {os.path.getsize(args.archive)} bytes"


def _test(args) -> str:
    with py7zr.SevenZipFile(args.archive, password=args.password) as z:
        bad = z.testzip()
    if bad is not None:
        raise py7zr.exceptions.CrcError(0, 0, bad)
    return f"{args.archive}: everything is OK"


class _Usage(Exception):
    pass


_VERBS = {"a": _add, "x": _extract, "l": _list, "t": _test}


def main(argv=None) -> int:
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return USAGE if exc.code else OK
    if args.verb != "a" and not os.path.exists(args.archive):
        print(f"nacrith 7z: {args.archive}: no such archive", file=sys.stderr)
        return FATAL

    def work():
        start = time.perf_counter()
        try:
            summary = _VERBS[args.verb](args)
        except _Usage as exc:
            print(f"nacrith 7z: {exc}", file=sys.stderr)
            return USAGE
        except py7zr.exceptions.PasswordRequired:
            print(f"nacrith 7z: {args.archive}: the archive is encrypted: give its password "
                  "with -p PASSWORD", file=sys.stderr)
            return FATAL
        except (NacrithError, OSError, ValueError, py7zr.exceptions.ArchiveError) as exc:
            print(f"nacrith 7z: {args.archive}: {type(exc).__name__}: {exc}", file=sys.stderr)
            return FATAL
        if not args.quiet:
            print(f"{summary} ({time.perf_counter() - start:.1f} s)", file=sys.stderr)
        return OK

    status = run_guarded("nacrith 7z", work)
    return STOPPED if status in (130, 143) else status
