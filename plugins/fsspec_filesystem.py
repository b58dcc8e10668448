"""The ``nacrith::`` filesystem: transparent compression over any fsspec store.

>>> import fsspec
>>> with fsspec.open("nacrith::memory://logs/app.log", "wb") as f:
...     _ = f.write(b"GET /index.html 200")
>>> fsspec.filesystem("memory").ls("/logs", detail=False)  # what the store holds
['/logs/app.log.nc']
>>> fs = fsspec.filesystem("nacrith", target_protocol="memory")
>>> fs.cat("/logs/app.log"), fs.size("/logs/app.log")
(b'GET /index.html 200', 19)

Files are stored as ``NAME.nc`` nacrith streams in the target filesystem and
seen through this one under their logical names, with their original sizes
(read from each stream's footer: two small reads, no decoding).  Reads of a
byte range decode only the blocks the range overlaps.  Objects in the target
without the suffix are not nacrith files and are not listed.

A file written through this filesystem appears in the target only when it
was closed cleanly, and is discarded if writing failed or the ``with`` block
raised, in binary and text modes alike: the codec's one rule for outputs
(``nacrith_codec.output.Output``: a hidden temporary file renamed on success, or on
object stores a multipart upload completed on success).  Within a transaction of the
target filesystem, the transaction decides instead.  Writers racing for one file
lose nothing silently: of two exclusive creators (``"x"``) the second fails with
FileExistsError when it closes, and an append (``"a"``) is published only if the
file still holds what it held when the append opened (ConflictError otherwise;
checked and published under one lock in a process, a check then a rename between
processes).

Registered under the ``fsspec.specs`` entry point ``nacrith``, so the URL
works without an import.  Storage options: ``model``, ``threads``, ``memlimit``
(reading: as for NacrithDecompressor) and any ``CodecConfig`` field (``streams``,
``window``, ``block_size``, ...); the model may also come from ``NACRITH_MODEL``.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile

from fsspec import filesystem
from fsspec.implementations.chained import ChainedFileSystem

from nacrith_codec.container import compressed_name, original_name
from nacrith_codec.container.index import original_size
from nacrith_codec.errors import ConflictError, NacrithError
from nacrith_codec.file import NacrithFile
from nacrith_codec.output import Output

from . import fsspec_compression  # noqa: F401  (registers compression="nacrith" too)

_MODES = ("rb", "wb", "xb", "ab")  # fsspec turns text modes into these


class _Publishing(NacrithFile):
    """A nacrith file over an Output: published when it closes cleanly, discarded
    otherwise."""

    def __init__(self, output: Output, **options):
        super().__init__(output, "w", **options)
        self._output = output

    def close(self):
        if self.closed:
            return
        try:
            super().close()
        finally:
            self._output.discard() if self.broken else self._output.commit()


def _copy_hashing(source, copy) -> bytes:
    """The SHA-256 of what ``source`` holds, copied into ``copy`` on the way (if not None)."""
    digest = hashlib.sha256()
    while chunk := source.read(1 << 20):
        digest.update(chunk)
        if copy is not None:
            copy.write(chunk)
    return digest.digest()


class NacrithFileSystem(ChainedFileSystem):
    """Compresses on write and decompresses on read, over a target filesystem."""

    protocol = "nacrith"

    def __init__(self, target_protocol=None, target_options=None, fs=None, fo=None,
                 model=None, threads=None, memlimit=None, **codec_options):
        storage = {k: codec_options.pop(k) for k in list(codec_options)
                   if k in ("skip_instance_cache", "use_listings_cache", "listings_expiry_time")}
        super().__init__(**storage)
        self.fs = fs if fs is not None else filesystem(target_protocol or "file",
                                                       **(target_options or {}))
        self._read_options = {"model": model, "threads": threads, "memlimit": memlimit}
        self._write_options = {"model": model, "threads": threads, **codec_options}

    # -- private path helpers
    def _target(self, path: str) -> str:
        return compressed_name(self.fs._strip_protocol(path))

    def _logical(self, info: dict) -> dict | None:
        if info["type"] == "directory":
            return dict(info)
        name = original_name(info["name"])
        if name is None:
            return None
        try:
            with self.fs.open(info["name"], "rb") as f:
                size = original_size(f)
        except NacrithError as exc:  # listed, not hidden, and not a reason to fail a listing
            return {**info, "name": name, "size": None, "stored_size": info.get("size"),
                    "error": str(exc)}
        return {**info, "name": name, "size": size, "stored_size": info.get("size")}

    # -- filesystem interface
    def _open(self, path, mode="rb", **kwargs):
        if mode not in _MODES:
            raise ValueError(f"nacrith:: files open for reading, writing, exclusive creation or "
                             f"appending (modes r, w, x, a; binary or text), not {mode!r}")
        target = self._target(path)
        if mode == "rb":
            return NacrithFile(self.fs.open(target, "rb"), "r", close_fileobj=True,
                               **self._read_options)
        if mode == "xb" and self.fs.exists(target):
            raise FileExistsError(f"{path} exists (stored as {target})")
        previous, digest = self._previous(target) if mode == "ab" else (None, None)
        # "x", and "a" of a file that did not exist: published only if the name is still free
        output = Output(target, self.fs, overwrite=mode == "wb" or previous is not None,
                        precondition=(lambda: self._unchanged(path, target, digest))
                        if previous is not None else None)
        if previous is not None:  # appending: the streams so far, then a new one
            with previous:
                shutil.copyfileobj(previous, output)
        return _Publishing(output, **self._write_options)

    def _previous(self, target: str):
        """A copy of the stored streams of a file opened for appending and their digest
        ((None, None) if it does not exist), taken before the target is opened for
        writing: the new file, the old streams followed by a new one, replaces it only
        when complete, and only if the file still holds them then."""
        if not self.fs.exists(target):
            return None, None
        copy = tempfile.SpooledTemporaryFile(max_size=16 << 20)
        with self.fs.open(target, "rb") as f:
            digest = _copy_hashing(f, copy)
        copy.seek(0)
        return copy, digest

    def _unchanged(self, path: str, target: str, digest: bytes):
        """ConflictError unless ``target`` still holds the bytes whose digest is ``digest``."""
        try:
            with self.fs.open(target, "rb") as f:
                now = _copy_hashing(f, None)
        except FileNotFoundError:
            now = None
        if now != digest:
            raise ConflictError(f"{path} was changed by another writer while this append was "
                                f"being written; this append was not applied (append again)")

    def ls(self, path, detail=True, **kwargs):
        entries = [e for e in (self._logical(i) for i in self.fs.ls(
            self.fs._strip_protocol(path), detail=True, **kwargs)) if e]
        return entries if detail else [e["name"] for e in entries]

    def info(self, path, **kwargs):
        try:
            return self._logical(self.fs.info(self._target(path), **kwargs))
        except FileNotFoundError:
            info = self.fs.info(self.fs._strip_protocol(path), **kwargs)
            if info["type"] != "directory":
                raise FileNotFoundError(path) from None
            return info

    def cp_file(self, path1, path2, **kwargs):
        self.fs.cp_file(self._target(path1), self._target(path2), **kwargs)  # no re-encoding

    def rm_file(self, path):
        self.fs.rm_file(self._target(path))

    def mkdir(self, path, create_parents=True, **kwargs):
        self.fs.mkdir(self.fs._strip_protocol(path), create_parents=create_parents, **kwargs)

    def makedirs(self, path, exist_ok=False):
        self.fs.makedirs(self.fs._strip_protocol(path), exist_ok=exist_ok)

    def rmdir(self, path):
        self.fs.rmdir(self.fs._strip_protocol(path))

    def created(self, path):
        return self.fs.created(self._target(path))

    def modified(self, path):
        return self.fs.modified(self._target(path))
