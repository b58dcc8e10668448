"""The ``nacrith::`` filesystem: transparent compression over any fsspec store.

    fs = fsspec.filesystem("nacrith", target_protocol="memory")
    with fsspec.open("nacrith::s3://bucket/logs/app.log", "wb") as f: ...

Files are stored as ``NAME.nc`` nacrith streams in the target filesystem and
seen through this one under their logical names, with their original sizes
(read from each stream's footer: two small reads, no decoding).  Reads of a
byte range decode only the blocks the range overlaps.  Objects in the target
without the suffix are not nacrith files and are not listed.

A file written through this filesystem appears in the target only when it
was closed cleanly: it is opened with ``autocommit=False`` (a local temporary
file renamed on success, a multipart upload completed on success on object
stores) and discarded if writing failed or the ``with`` block raised.  Within
a transaction of the target filesystem, the transaction decides instead.
(fsspec's memory filesystem publishes files as soon as they are opened; there
a failed write leaves a stream without its end record, read as truncated.)

Registered under the ``fsspec.specs`` entry point ``nacrith``, so the URL
works without an import.  Storage options: ``model``, ``threads``, ``memlimit``
(reading: as for NacrithDecompressor) and any ``CodecConfig`` field (``streams``,
``window``, ``block_size``, ...); the model may also come from ``NACRITH_MODEL``.
"""

from __future__ import annotations

import shutil
import tempfile

from fsspec import filesystem
from fsspec.implementations.chained import ChainedFileSystem

from nacrith_codec import container
from nacrith_codec.errors import NacrithError
from nacrith_codec.file import NacrithFile
from nacrith_codec.random_access import original_size

from . import fsspec_compression  # noqa: F401  (registers compression="nacrith" too)

SUFFIX = container.SUFFIX
_MODES = ("rb", "wb", "xb", "ab")  # fsspec turns text modes into these


class _Publishing(NacrithFile):
    """A nacrith file over a target file opened without autocommit: committed when it
    closes cleanly, discarded otherwise (``commit`` False: the target's transaction or
    the store decides)."""

    def __init__(self, raw, commit: bool, **options):
        super().__init__(raw, "w", **options)
        self._target_file, self._commit = raw, commit

    def close(self):
        if self.closed:
            return
        try:
            super().close()
        finally:
            self._target_file.close()
            if self._commit:
                self._target_file.discard() if self.broken else self._target_file.commit()


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
        return self.fs._strip_protocol(path) + SUFFIX

    def _logical(self, info: dict) -> dict | None:
        if info["type"] == "directory":
            return dict(info)
        if not info["name"].endswith(SUFFIX):
            return None
        try:
            with self.fs.open(info["name"], "rb") as f:
                size = original_size(f)
        except NacrithError as exc:  # listed, not hidden, and not a reason to fail a listing
            return {**info, "name": info["name"][:-len(SUFFIX)], "size": None,
                    "stored_size": info.get("size"), "error": str(exc)}
        return {**info, "name": info["name"][:-len(SUFFIX)], "size": size,
                "stored_size": info.get("size")}

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
        previous = self._previous(target) if mode == "ab" else None
        if self.fs._intrans:  # the target's transaction commits or discards
            raw, commit = self.fs.open(target, "wb"), False
        else:
            raw = self.fs._open(target, "wb", autocommit=False)
            commit = getattr(raw, "autocommit", True) is False
        if previous is not None:  # appending: the streams so far, then a new one
            with previous:
                shutil.copyfileobj(previous, raw)
        return _Publishing(raw, commit=commit, **self._write_options)

    def _previous(self, target: str):
        """A copy of the stored streams of a file opened for appending (None if it does not
        exist), taken before the target is opened for writing: the new file, the old
        streams followed by a new one, replaces it only when complete."""
        if not self.fs.exists(target):
            return None
        copy = tempfile.SpooledTemporaryFile(max_size=16 << 20)
        with self.fs.open(target, "rb") as f:
            shutil.copyfileobj(f, copy)
        copy.seek(0)
        return copy

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
