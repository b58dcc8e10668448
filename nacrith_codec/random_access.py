"""Random access: reading any byte range by decoding only the blocks it overlaps.

A seekable stream is indexed from its two ends: the header at the start and
the END record, found through the fixed footer at the end, which lists every
block's original and record length.  A block is decoded by a fresh
NacrithDecompressor fed the header and that one record, so every check of
the sequential path (CRCs, model fingerprint, content digest) applies.
"""

from __future__ import annotations

import bisect
import io
import struct

from . import container
from .api import NacrithDecompressor
from .errors import CorruptError, TruncatedError


def read_index(fp) -> tuple[bytes, list[int], list[int], int] | None:
    """(header bytes, raw offsets, file offsets, original size) of a seekable stream.

    None when the file is not one single stream ending at the end of the file
    (concatenated streams, trailing data): such files are read sequentially.
    """
    size = fp.seek(0, io.SEEK_END)
    fp.seek(0)
    head = fp.read(min(size, 16 << 10))
    parsed = container.parse_header(head)
    if parsed is None:
        raise TruncatedError("the stream ends inside its header")
    header, header_len = parsed
    if size < header_len + container.FOOTER_SIZE:
        return None
    fp.seek(size - container.FOOTER_SIZE)
    length, magic = struct.unpack("<I4s", fp.read(container.FOOTER_SIZE))
    if magic != container.FOOTER_MAGIC or length > size - header_len - container.FOOTER_SIZE:
        return None
    fp.seek(size - container.FOOTER_SIZE - length)
    try:
        end = container.parse_tail(fp.read(length + container.FOOTER_SIZE), header, size // 5)
    except CorruptError:
        return None  # the sequential reader reports what is wrong, in stream order
    raw, offsets = [0], [header_len]
    for raw_len, record_len in end.index:
        raw.append(raw[-1] + raw_len)
        offsets.append(offsets[-1] + record_len)
    if offsets[-1] + length + container.FOOTER_SIZE != size or raw[-1] != end.total_len:
        return None
    return bytes(head[:header_len]), raw, offsets, end.total_len


def decode_block(header: bytes, record: bytes, raw_len: int, i: int, **options) -> bytes:
    """Block ``i`` of a stream, decoded from the stream's header bytes and the block's
    record, with every check of the sequential path; ``raw_len`` is its length in the
    END record's index.  ``options`` as for NacrithDecompressor."""
    data = NacrithDecompressor(**options).decompress(header + record)
    if len(data) != raw_len:
        raise CorruptError(f"corrupt stream: block {i} does not match the index")
    return data


def original_size(fp) -> int | None:
    """The original size of a seekable single stream, from its two ends."""
    index = read_index(fp)
    return index[3] if index else None


class RandomAccessReader(io.RawIOBase):
    """A seekable raw reader over a stream; ``index`` comes from ``read_index``."""

    def __init__(self, fp, index, **options):
        options.pop("workers", None)  # one block at a time, as reads need them
        self._fp, self._options = fp, options
        self._header, self._raw, self._offsets, self._size = index
        self._pos = 0
        self._cached = (-1, b"")

    def readable(self):
        return True

    def seekable(self):
        return True

    def tell(self):
        return self._pos

    def seek(self, offset, whence=io.SEEK_SET):
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def _block(self, i: int) -> bytes:
        if self._cached[0] != i:
            self._fp.seek(self._offsets[i])
            record = self._fp.read(self._offsets[i + 1] - self._offsets[i])
            data = decode_block(self._header, record, self._raw[i + 1] - self._raw[i], i,
                                **self._options)
            self._cached = (i, data)
        return self._cached[1]

    def readinto(self, b) -> int:
        if self._pos >= self._size:
            return 0
        i = bisect.bisect_right(self._raw, self._pos) - 1
        data = self._block(i)
        start = self._pos - self._raw[i]
        n = min(len(b), len(data) - start)
        b[:n] = data[start:start + n]
        self._pos += n
        return n
