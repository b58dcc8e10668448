"""Random access: reading any byte range by decoding only the blocks it overlaps.

The file's index (container/index.py) says where each block lies; a block is
decoded by a fresh NacrithDecompressor fed its stream's header and that one record,
so every check of the sequential path (CRCs, model fingerprint, content digest)
applies.
"""

from __future__ import annotations

import bisect
import io

from . import container
from .api import NacrithDecompressor
from .container.index import Index, original_size, read_index
from .errors import CorruptError, NacrithError
from .verify import decodes_otherwise, does_not_decode

__all__ = ["Index", "RandomAccessReader", "decode_block", "original_size", "read_index",
           "verify_block"]


def decode_block(header: bytes, record: bytes, raw_len: int, number: int,
                 offset: int | None = None, **options) -> bytes:
    """Block ``number`` of a stream (counted in that stream), decoded from the stream's
    header bytes and the block's record, with every check of the sequential path;
    ``raw_len`` is its length in the END record's index, ``offset`` where the record lies
    in its file (what an error names, as the sequential path's do).  ``options`` as for
    NacrithDecompressor."""
    decoder = NacrithDecompressor(**options)
    decoder._first = number  # the record's CRC covers its number (format version 5)
    if offset is not None:  # the header read first moves the offset on by its length
        decoder._offset = offset - len(header)
    data = decoder.decompress(header + record)
    if len(data) != raw_len:
        raise CorruptError(f"corrupt stream: block {number} does not match the index")
    return data


def verify_block(header: bytes, record: bytes, data: bytes, number: int, what: str,
                 **options):
    """Block ``number`` of the stream with header bytes ``header``, written as ``record``
    (bound to its place), must decode to ``data``; ``options`` as for decompressing."""
    try:
        decoded = decode_block(header, record, len(data), number, **options)
    except NacrithError as exc:
        raise does_not_decode(what, exc) from exc
    if decoded != data:
        raise decodes_otherwise(what)


class RandomAccessReader(io.RawIOBase):
    """A seekable raw reader over one or more streams; ``index`` comes from ``read_index``."""

    def __init__(self, fp, index: Index, **options):
        options.pop("workers", None)  # one block at a time, as reads need them
        self._fp, self._options, self._index = fp, options, index
        self._pos = 0
        self._cached = (-1, b"")
        self._digests: dict = {}  # stream -> {block: digest of its bytes}, until checked

    def readable(self):
        return True

    def seekable(self):
        return True

    @property
    def size(self) -> int:
        return self._index.size

    def tell(self):
        return self._pos

    def seek(self, offset, whence=io.SEEK_SET):
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self.size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def _block(self, i: int) -> bytes:
        if self._cached[0] != i:
            index = self._index
            self._fp.seek(index.offsets[i])
            record = self._fp.read(index.ends[i] - index.offsets[i])
            data = decode_block(index.header(i), record, index.raw[i + 1] - index.raw[i],
                                index.number(i), index.offsets[i], **self._options)
            self._check(i, data)
            self._cached = (i, data)
        return self._cached[1]

    def _check(self, i: int, data: bytes):
        """Once every block of a stream was decoded (a whole read), its content digest."""
        index = self._index
        n = index.stream[i]
        seen = self._digests.setdefault(n, {})
        seen[i] = container.digest(data)
        if len(seen) == bisect.bisect_right(index.stream, n) - bisect.bisect_left(index.stream, n):
            del self._digests[n]
            index.check_content(n, [seen[j] for j in sorted(seen)])

    def readinto(self, b) -> int:
        if self._pos >= self.size:
            return 0
        i = bisect.bisect_right(self._index.raw, self._pos) - 1
        data = self._block(i)
        start = self._pos - self._index.raw[i]
        n = min(len(b), len(data) - start)
        b[:n] = data[start:start + n]
        self._pos += n
        return n
