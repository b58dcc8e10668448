"""NacrithFile and open(): file objects over the codec, as lzma.LZMAFile."""

from __future__ import annotations

import builtins
import contextlib
import io
import os
import sys
import warnings

from .arguments import byte_view
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
    rule of ``container.sequence``: truncation and trailing garbage are NacrithErrors.

    Over a seekable file that has no index (damaged, truncated, followed by other data,
    or of more streams than an index holds) it seeks as lzma's and gzip's readers do:
    forward by decoding, backward by decoding again from the start, and to the end by
    decoding it all, so what is wrong with the file surfaces as its NacrithError."""

    def __init__(self, fp, **options):
        self._fp, self._options = fp, options
        self._start = fp.tell() if fp.seekable() else 0
        self._streams = decoder_of_streams(**options)
        self._pos = 0
        self._size = None  # known once the end was reached

    def readable(self):
        return True

    def seekable(self):
        return self._fp.seekable()

    def tell(self):
        return self._pos

    @property
    def size(self) -> int | None:
        """The original size: decoding to the end (None for an unseekable file)."""
        if self._size is None and self.seekable():
            position = self._pos
            self.seek(0, io.SEEK_END)
            self.seek(position)
        return self._size

    def seek(self, offset, whence=io.SEEK_SET):
        if not self.seekable():
            raise io.UnsupportedOperation("the underlying file object does not support seeking")
        if whence == io.SEEK_END:
            if self._size is None:
                self._skip(None)
            offset += self._size
        elif whence == io.SEEK_CUR:
            offset += self._pos
        elif whence != io.SEEK_SET:
            raise ValueError(f"invalid whence ({whence}, should be 0, 1 or 2)")
        offset = max(0, offset)
        if offset < self._pos:  # back: decode again from the start
            self._streams.close()
            self._fp.seek(self._start)
            self._streams = decoder_of_streams(**self._options)
            self._pos = 0
        self._skip(offset - self._pos)
        return self._pos

    def _skip(self, count):
        """Decode and drop ``count`` bytes (None: up to the end)."""
        buffer = bytearray(_CHUNK)
        while count is None or count > 0:
            n = self.readinto(memoryview(buffer)[:_CHUNK if count is None else min(count, _CHUNK)])
            if not n:
                break
            count = None if count is None else count - n

    def readinto(self, b) -> int:
        n = self._decode_into(b)
        self._pos += n
        if not n and len(memoryview(b)):
            self._size = self._pos
        return n

    def _decode_into(self, b) -> int:
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

    A write is finished only by a clean, explicit close: if writing to the
    underlying file failed, the ``with`` block that wrote it raised, ``close()``
    runs while an exception raised since the file was opened propagates (a
    ``finally`` clause, fsspec's ``with fsspec.open(...)``, a text wrapper's
    close), or the file is dropped unclosed (garbage collection, with a
    ResourceWarning), closing ends without the end record, so the partial file
    reads as truncated (an error), never as a complete stream of part of the data.
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
            self._raised_before = sys.exc_info()[1]  # an exception being handled at opening
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
        data = byte_view(data)
        length = data.nbytes
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
        """The original (uncompressed) size of a file open for reading: from the index of
        a seekable file of complete streams (no decoding); by decoding to the end for
        another seekable file (a damaged one raises its NacrithError); None for an
        unseekable one.  fsspec reads it for ranges and negative offsets."""
        self._check_can_read()
        return self._raw.size

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

    def _abandoned(self) -> bool:
        """Whether the write ends without its end record: it failed, or an exception
        raised since the file was opened is propagating through this close."""
        raising = sys.exc_info()[1]
        if raising is not None and raising is not self._raised_before:
            self._broken = True
        return self._broken

    def __del__(self):
        self._dropped()
        super().__del__()

    def _dropped(self):
        """Garbage collection reached a file still open: a write is never completed then."""
        if getattr(self, "_mode", None) == _WRITE:
            self._broken = True
            warnings.warn("a nacrith file open for writing was never closed: its stream was "
                          "left without its end (it reads as truncated); close it, or use "
                          "'with', to complete it", ResourceWarning, source=self)

    def close(self):
        if self._mode is None:
            return
        try:
            if self._mode == _READ:
                self._buffer.close()
                self._buffer = None
            elif self._abandoned():
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

    def __del__(self):
        with contextlib.suppress(AttributeError, ValueError):  # never made, or detached
            self.buffer._dropped()  # before this wrapper's close would complete the stream
        super().__del__()


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
