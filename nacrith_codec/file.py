"""NacrithFile and open(): file objects over the codec, as lzma.LZMAFile."""

from __future__ import annotations

import _compression
import builtins
import io
import os

from .api import NacrithCompressor, NacrithDecompressor
from .errors import NacrithError, TruncatedError
from .random_access import RandomAccessReader, read_index

_READ, _WRITE = "r", "w"


def _seekable_index(fp):
    """The block index of a seekable single-stream file, else None (read sequentially)."""
    try:
        if not fp.seekable():
            return None
        index = read_index(fp)
        fp.seek(0)
        return index
    except (OSError, io.UnsupportedOperation):
        return None


class _Reader(_compression.DecompressReader):
    """The stdlib's reader, strict: trailing garbage and truncation are NacrithErrors."""

    def read(self, size=-1):
        try:
            return super().read(size)
        except EOFError as exc:
            if isinstance(exc, NacrithError):
                raise
            raise TruncatedError(f"nacrith file is truncated: {exc}") from None


class NacrithFile(_compression.BaseStream):
    """A file object that compresses on write and decompresses on read.

    ``filename`` is a path or a binary file object (closed with this file when
    ``close_fileobj`` is true); ``mode`` is "r", "w", "x" or "a" (with an
    optional "b").  Writing buffers at most one block; reading
    decodes one block at a time (concatenated streams are read in sequence).
    Keyword options go to NacrithCompressor / NacrithDecompressor.

    A write is finished only by a clean close: if writing to the underlying
    file failed, or the ``with`` block that wrote it raised, closing ends
    without the end record, so the partial file reads as truncated (an
    error), never as a complete stream of part of the data.
    """

    def __init__(self, filename, mode="r", *, close_fileobj=False, **options):
        self._fp, self._closefp, self._mode = None, close_fileobj, None
        self._broken = False
        mode = mode.replace("b", "")
        if mode not in ("r", "w", "x", "a"):
            raise ValueError(f"invalid mode: {mode!r}")
        if isinstance(filename, (str, bytes, os.PathLike)):
            self._fp = builtins.open(filename, mode + "b")
            self._closefp = True
        elif hasattr(filename, "read") or hasattr(filename, "write"):
            self._fp = filename
        else:
            raise TypeError("filename must be a str, bytes, os.PathLike or file object")
        if mode == "r":
            self._mode = _READ
            index = _seekable_index(self._fp)
            raw = (RandomAccessReader(self._fp, index, **options) if index
                   else _Reader(self._fp, NacrithDecompressor, **options))
            self._buffer = io.BufferedReader(raw)
        else:
            self._mode = _WRITE
            self._compressor = NacrithCompressor(**options)
            self._pos = 0

    # -- writing
    def write(self, data) -> int:
        self._check_can_write()
        with memoryview(data) as view:
            length = view.nbytes
        try:
            self._fp.write(self._compressor.compress(data))
        except BaseException:
            self._broken = True  # what was written is not a prefix of a good stream
            raise
        self._pos += length
        return length

    # -- reading
    def read(self, size=-1) -> bytes:
        self._check_can_read()
        return self._buffer.read(size)

    def read1(self, size=-1) -> bytes:
        self._check_can_read()
        if size < 0:
            size = io.DEFAULT_BUFFER_SIZE
        return self._buffer.read1(size)

    def readline(self, size=-1) -> bytes:
        self._check_can_read()
        return self._buffer.readline(size)

    def peek(self, size=-1) -> bytes:
        self._check_can_read()
        return self._buffer.peek(size)

    def seek(self, offset, whence=io.SEEK_SET):
        self._check_can_seek()
        return self._buffer.seek(offset, whence)

    def tell(self) -> int:
        self._check_not_closed()
        return self._buffer.tell() if self._mode == _READ else self._pos

    # -- state
    @property
    def closed(self) -> bool:
        return self._mode is None

    def fileno(self):
        self._check_not_closed()
        return self._fp.fileno()

    def seekable(self) -> bool:
        return self.readable() and self._buffer.seekable()

    def readable(self) -> bool:
        self._check_not_closed()
        return self._mode == _READ

    def writable(self) -> bool:
        self._check_not_closed()
        return self._mode == _WRITE

    @property
    def broken(self) -> bool:
        """Whether writing failed or was abandoned (the file was left without its end)."""
        return self._broken

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None and self._mode == _WRITE:
            self._broken = True
        self.close()

    def close(self):
        if self._mode is None:
            return
        try:
            if self._mode == _READ:
                self._buffer.close()
                self._buffer = None
            elif self._broken:
                self._compressor.close()
            else:
                try:
                    self._fp.write(self._compressor.flush())
                except BaseException:
                    self._broken = True
                    self._compressor.close()
                    raise
            self._compressor = None
        finally:
            try:
                if self._closefp:
                    self._fp.close()
            finally:
                self._fp, self._closefp, self._mode = None, False, None


class _TextFile(io.TextIOWrapper):
    """Text over a NacrithFile; a ``with`` block that raises abandons the stream too."""

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None and self.buffer.writable():
            self.buffer._broken = True
        return super().__exit__(exc_type, exc, tb)


def open(filename, mode="rb", *, encoding=None, errors=None, newline=None, **options):
    """Open a nacrith file in binary or text mode, as lzma.open()."""
    if "t" in mode:
        if "b" in mode:
            raise ValueError(f"invalid mode: {mode!r}")
    elif encoding is not None or errors is not None or newline is not None:
        raise ValueError("encoding, errors and newline are for text mode only")
    binary = NacrithFile(filename, mode.replace("t", ""), **options)
    if "t" in mode:
        return _TextFile(binary, encoding=io.text_encoding(encoding), errors=errors,
                         newline=newline)
    return binary
