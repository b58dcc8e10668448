"""NacrithFile and open(): file objects over the codec, as lzma.LZMAFile."""

from __future__ import annotations

import builtins
import io
import os

from .api import DECOMPRESSOR_OPTIONS, NacrithCompressor, check_options, decoder_of_streams
from .output import write_all
from .random_access import RandomAccessReader, read_index

_READ, _WRITE = "r", "w"
_CHUNK = 64 << 10  # compressed bytes read at a time by the sequential reader


def _seekable_index(fp):
    """The block index of a seekable file of complete streams, else None (read
    sequentially)."""
    try:
        if not fp.seekable():
            return None
        index = read_index(fp)
        fp.seek(0)
        return index
    except (OSError, io.UnsupportedOperation):
        return None


class _SequentialReader(io.RawIOBase):
    """Decodes the streams of an unseekable (or unindexable) file in order, by the one
    rule of ``container.sequence``: truncation and trailing garbage are NacrithErrors."""

    def __init__(self, fp, **options):
        self._fp = fp
        self._streams = decoder_of_streams(**options)

    def readable(self):
        return True

    def readinto(self, b) -> int:
        with memoryview(b) as view, view.cast("B") as out:
            while not self._streams.eof:
                chunk = b""
                if self._streams.needs_input:
                    chunk = self._fp.read(_CHUNK)
                    if not chunk:
                        self._streams.finish()
                        break
                data = self._streams.decompress(chunk, len(out))
                if data:
                    out[:len(data)] = data
                    return len(data)
        return 0

    def close(self):
        if not self.closed:
            self._streams.close()
        super().close()


class NacrithFile(io.BufferedIOBase):
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
        if not isinstance(filename, (str, bytes, os.PathLike)) and not (
                hasattr(filename, "read") or hasattr(filename, "write")):
            raise TypeError("filename must be a str, bytes, os.PathLike or file object")
        if mode == "r":
            check_options(options, DECOMPRESSOR_OPTIONS, config=False)
        else:  # before the file is created or truncated: a bad option changes nothing
            self._compressor = NacrithCompressor(**options)
            self._pos = 0
        if isinstance(filename, (str, bytes, os.PathLike)):
            self._fp = builtins.open(filename, mode + "b")
            self._closefp = True
        else:
            self._fp = filename
        if mode == "r":
            try:
                index = _seekable_index(self._fp)
                self._raw = (RandomAccessReader(self._fp, index, **options) if index
                             else _SequentialReader(self._fp, **options))
            except BaseException:
                if self._closefp:
                    self._fp.close()
                raise
            self._buffer = io.BufferedReader(self._raw)
        self._mode = _READ if mode == "r" else _WRITE

    # -- writing
    def write(self, data) -> int:
        self._check_can_write()
        with memoryview(data) as view:
            length = view.nbytes
        try:
            write_all(self._fp, self._compressor.compress(data))
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

    @property
    def size(self) -> int | None:
        """The original (uncompressed) size of a file open for reading, from the index of
        a seekable file (no decoding); None for a file read sequentially (unseekable, or
        not a sequence of complete streams).  fsspec reads it for ranges and negative
        offsets."""
        self._check_can_read()
        return self._raw.size if isinstance(self._raw, RandomAccessReader) else None

    def _check_not_closed(self):
        if self.closed:
            raise ValueError("I/O operation on closed file")

    def _check_can_read(self):
        if not self.readable():
            raise io.UnsupportedOperation("File not open for reading")

    def _check_can_write(self):
        if not self.writable():
            raise io.UnsupportedOperation("File not open for writing")

    def _check_can_seek(self):
        if not self.readable():
            raise io.UnsupportedOperation("Seeking is only supported on files open for reading")
        if not self.seekable():
            raise io.UnsupportedOperation("The underlying file object does not support seeking")

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
                    write_all(self._fp, self._compressor.flush())
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
    """Open a nacrith file in binary or text mode, as lzma.open().

    >>> import io
    >>> buffer = io.BytesIO()
    >>> with open(buffer, "wt", encoding="utf-8") as f:
    ...     _ = f.write("Off with her head!")
    >>> _ = buffer.seek(0)
    >>> with open(buffer, "rt", encoding="utf-8") as f:
    ...     f.read()
    'Off with her head!'
    """
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
