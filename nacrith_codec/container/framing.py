"""A stream's framing: its header, its blocks bound to their places, its END record.

``StreamWriter`` frames every stream written (the API's compressor and the Dask
runner), and ``Tally`` is what both a writer and a reader count of a stream's
blocks: a reader checks the END record against its own count (``Tally.check_end``),
so a block dropped, repeated, moved or taken from another stream is an error.
"""

from __future__ import annotations

from ..errors import CorruptError
from .fields import content_digest
from .header import LEAN, Header, key_of, pack_header
from .records import End, bind, pack_end


class Tally:
    """The blocks of a stream so far: (raw_len, record_len) each, their digests, the total."""

    def __init__(self):
        self.index: list = []
        self.digests: list = []
        self.total = 0

    def add(self, raw_len: int, record_len: int, digest: bytes):
        self.index.append((raw_len, record_len))
        self.digests.append(digest)
        self.total += raw_len

    def check_end(self, end: End, header: Header):
        """The END record must index exactly the blocks read, and cover their content."""
        content = content_digest(self.digests) if end.content else b""
        if (end.index, end.total_len, end.content) != (tuple(self.index), self.total, content):
            raise CorruptError("corrupt stream: blocks are missing, repeated, misindexed "
                               "or taken from another stream")
        if header.content_size is not None and header.content_size != self.total:
            raise CorruptError("corrupt stream: content size does not match the data")


def check_content(expected: bytes, digests, stream: int):
    """Stream number ``stream``'s blocks, decoded (``digests``: fields.digest of each, in
    order), must be the ones its END record covers (``expected``; b"" before version 5)."""
    if expected and content_digest(digests) != expected:
        raise CorruptError(f"corrupt stream: the blocks of stream {stream + 1} are not the "
                           "ones its end record covers (a block taken from another stream?)")


class StreamWriter:
    """Frames one stream: its header, then each block record bound to its number (version
    5), then the END record over them all.  Every writer of streams uses it."""

    def __init__(self, header: Header):
        self.head = pack_header(header)
        self._key = key_of(self.head)
        self._lean = header.version >= LEAN  # no content digest over no blocks
        self.tally = Tally()

    def block(self, record: bytes, raw_len: int) -> bytes:
        """The next block's record as it goes into the stream."""
        if self._key:
            record = bind(record, self._key, len(self.tally.index))
        self.tally.add(raw_len, len(record), record[-12:-4])  # a record ends digest, CRC
        return record

    def end(self) -> bytes:
        t = self.tally
        digested = self._key and (t.index or not self._lean)
        return pack_end(t.total, t.index, content_digest(t.digests) if digested else b"")
