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
import shutil
import stat
import sys
import time

import py7zr
from py7zr.callbacks import ExtractCallback

from nacrith_codec.cli import (add_codec_arguments, codec_options, complain, printable,
                               progress_bar, run_guarded, thread_count, threads_problem)
from nacrith_codec.engines.llamacpp import THREADS_ENV
from nacrith_codec.errors import ConflictError, NacrithError
from nacrith_codec.output import Output

from .sevenzip import FILTER_NACRITH

OK, FATAL, USAGE, STOPPED = 0, 2, 7, 255


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nacrith 7z",
                                usage="%(prog)s {a,x,l,t} ARCHIVE.7z [NAME ...] [options]",
                                description=__doc__.splitlines()[0].replace("``", ""),
                                epilog="exit status: 0 no error, 2 fatal error, "
                                       "7 command line error, 255 stopped by the user")
    p.add_argument("verb", choices=("a", "x", "l", "t"), help="add, extract, list, test")
    p.add_argument("archive", metavar="ARCHIVE.7z", nargs="?")  # required: main() says so
    p.add_argument("names", nargs="*", metavar="NAME",
                   help="a: files and directories to add; x: members to extract (default all)")
    p.add_argument("-o", "--output-dir", metavar="DIR", default=".", help="x: extract into DIR")
    p.add_argument("-p", "--password", help="encrypt (a) or decrypt with PASSWORD")
    p.add_argument("-y", "--yes", action="store_true",
                   help="x: overwrite files that exist (refused otherwise)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar, no summary")
    p.add_argument("--model", metavar="GGUF", help="a: model file (default: the bundled one)")
    p.add_argument("--threads", type=thread_count, metavar="N",
                   help="threads coding each member (speed only; default: $NACRITH_THREADS, "
                        "else one per core)")
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
    def report_warning(self, message): print(f"nacrith 7z: {printable(str(message))}", file=sys.stderr)  # noqa: E704,E501
    def report_postprocess(self): pass  # noqa: E704


def _add(args) -> str:
    if not args.names:
        raise _Usage("a needs files or directories to add")
    missing = [n for n in args.names if not os.path.exists(n)]
    if missing:
        raise FileNotFoundError(f"nothing to add: {', '.join(missing)} not found")
    sizes = sum(os.path.getsize(os.path.join(d, f)) for n in args.names
                for d, _, fs in (os.walk(n) if os.path.isdir(n) else [("", [], [n])]) for f in fs)
    exists = os.path.exists(args.archive) and py7zr.is_7zfile(args.archive)
    before = _members(args) if exists else 0  # (another file is refused by _updating)
    with _bar(args, sizes) as bar, _updating(args.archive) as (fp, mode):
        nacrith = {"id": FILTER_NACRITH, **codec_options(args),
                   **({"model": args.model} if args.model else {}),
                   **({"progress": bar.update} if bar is not None else {})}
        filters = [nacrith] + ([{"id": py7zr.FILTER_CRYPTO_AES256_SHA256}] if args.password else [])
        with py7zr.SevenZipFile(fp, mode, filters=filters, password=args.password) as z:
            for name in args.names:
                arcname = os.path.basename(os.path.normpath(name))
                z.writeall(name, arcname) if os.path.isdir(name) else z.write(name, arcname)
    added = _members(args) - before  # files and folders, as 7-Zip counts them
    return f"{added} item(s) added to {args.archive}: {os.path.getsize(args.archive)} bytes"


def _members(args) -> int:
    """How many entries (files and folders) the archive lists."""
    with py7zr.SevenZipFile(args.archive, password=args.password) as z:
        return len(z.list())


@contextlib.contextmanager
def _updating(archive: str):
    """(a file, py7zr's mode) to build ``archive`` in: a hidden temporary file beside it,
    holding a copy of the archive when it exists (7-Zip's own way of updating), renamed
    over it only once py7zr has written everything.  An interrupted, failed or refused
    addition leaves the archive as it was, and a new archive absent.  The archive must
    not change meanwhile (ConflictError: another run added to it first)."""
    before = os.stat(archive) if os.path.exists(archive) else None
    if before is not None and not py7zr.is_7zfile(archive):
        raise FileExistsError(f"{archive} exists and is not a 7z archive; it was left as it "
                              "is (name a new archive)")

    def unchanged():
        now = os.stat(archive) if os.path.exists(archive) else None
        if now is None or _identity(now) != _identity(before):
            raise ConflictError(f"{archive} was changed by another writer meanwhile; these "
                                "files were not added (add them again)")

    with Output(archive, overwrite=before is not None, update=True,
                exists_hint=" (created by another writer meanwhile)",
                precondition=unchanged if before is not None else None) as out:
        if before is not None:
            with open(archive, "rb") as old:
                shutil.copyfileobj(old, out.file)
            os.fchmod(out.fileno(), stat.S_IMODE(before.st_mode))  # who may read it stays
            out.file.seek(0)
        yield out.file, "a" if before is not None else "w"


def _identity(st: os.stat_result) -> tuple:
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


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
        print(f"{when:19} {m.uncompressed if not m.is_directory else 'D':>12} {crc:>8}  "
              f"{printable(m.filename)}")
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
        args = parser.parse_intermixed_args(argv)  # options anywhere, as 7-Zip takes them
    except SystemExit as exc:
        return USAGE if exc.code else OK
    if args.archive is None:  # argparse would name NAME as required too
        parser.print_usage(sys.stderr)
        print(f"nacrith 7z: error: {args.verb} needs ARCHIVE.7z", file=sys.stderr)
        return USAGE
    if args.threads is not None:  # every coder of this process: py7zr builds the decoders
        os.environ[THREADS_ENV] = str(args.threads)
    problem = threads_problem(args)
    if problem:
        print(f"nacrith 7z: {problem}", file=sys.stderr)
        return USAGE
    if args.verb != "a" and not os.path.exists(args.archive):
        print(f"nacrith 7z: {printable(args.archive)}: no such archive", file=sys.stderr)
        return FATAL

    def work():
        start = time.perf_counter()
        try:
            summary = _VERBS[args.verb](args)
        except _Usage as exc:
            print(f"nacrith 7z: {printable(str(exc))}", file=sys.stderr)
            return USAGE
        except py7zr.exceptions.PasswordRequired:
            print(f"nacrith 7z: {printable(args.archive)}: the archive is encrypted: give its password "
                  "with -p PASSWORD", file=sys.stderr)
            return FATAL
        except (NacrithError, OSError, ValueError, py7zr.exceptions.ArchiveError) as exc:
            complain("nacrith 7z", args.archive, exc)
            return FATAL
        if not args.quiet:
            print(f"{printable(summary)} ({time.perf_counter() - start:.1f} s)", file=sys.stderr)
        return OK

    status = run_guarded("nacrith 7z", work)
    return STOPPED if status in (130, 143) else status
