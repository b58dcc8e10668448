"""The index of a seekable file of streams: where every block lies, from the streams' ends.

A seekable file is indexed from the ends of its streams: each stream's END
record, found through the fixed footer at its end, lists every block's
original and record length, and so where the stream's header lies (a few small
reads per stream, no decoding).  Random access (random_access.py), listings of
compressed objects (the ``nacrith::`` filesystem) and the Dask runner read it.
"""

from __future__ import annotations

import bisect
import dataclasses
import io
import struct

from ..config import MAX_BLOCK_SIZE, CodecConfig
from ..errors import CorruptError, NacrithError, TruncatedError
from .framing import check_content
from .header import BOUND, LEAN, MAGIC, MAX_SIZE, VERSION, Header, parse_header
from .records import FOOTER_MAGIC, FOOTER_SIZE, End, parse_tail
from .sequence import INCOMPLETE

#: Streams a random-access index holds at most; a file of more is read sequentially.
MAX_STREAMS = 4096


@dataclasses.dataclass(frozen=True)
class Index:
    """Where every block of a seekable file of one or more streams lies.

    ``raw[i]``/``raw[i + 1]`` bound block i in the original bytes, ``offsets[i]`` and
    ``ends[i]`` its record in the file, ``headers[stream[i]]`` its stream's header.
    """

    headers: tuple  # the header bytes of each stream
    stream: tuple  # the stream of each block
    raw: tuple  # original offset of each block, and the total at the end
    offsets: tuple  # file offset of each block's record
    ends: tuple  # file offset after each block's record
    contents: tuple = ()  # each stream's content digest (b"" before format version 5)

    @property
    def size(self) -> int:
        return self.raw[-1]

    @property
    def blocks(self) -> int:
        return len(self.offsets)

    def header(self, i: int) -> bytes:
        return self.headers[self.stream[i]]

    def number(self, i: int) -> int:
        """Block ``i``'s number in its own stream (what binds it to its place)."""
        return i - bisect.bisect_left(self.stream, self.stream[i])

    def check_content(self, n: int, digests) -> None:
        """Stream ``n``'s blocks, decoded (``digests``: container.digest of each, in
        order), must be the ones its END record covers: a block from another stream
        with the same header and number is caught here, once the stream is read."""
        check_content(self.contents[n] if self.contents else b"", digests, n)


#: A header only to read an END record's lengths before the stream's own header is known.
#: One per layout of the END record (version 5 added the content digest, version 8 left
#: it out of a stream without blocks).
_ANY = [Header(CodecConfig(block_size=MAX_BLOCK_SIZE), bytes(32), "", {}, None, v)
        for v in (VERSION, LEAN - 1, BOUND - 1)]


def _end_record(tail: bytes, header) -> End | None:
    try:
        return parse_tail(tail, header, len(tail))
    except CorruptError:
        return None


def _stream_ending_at(fp, end: int):
    """The stream whose footer ends at file offset ``end``: (start, header bytes, End),
    or None.  The END record gives the blocks' lengths and so where the header ends;
    the header is the earliest one that parses (CRC included) and ends exactly there."""
    if end < FOOTER_SIZE:
        return None
    fp.seek(end - FOOTER_SIZE)
    length, magic = struct.unpack("<I4s", fp.read(FOOTER_SIZE))
    if magic != FOOTER_MAGIC or length > end - FOOTER_SIZE:
        return None
    fp.seek(end - FOOTER_SIZE - length)
    tail = fp.read(length + FOOTER_SIZE)
    record = next(filter(None, (_end_record(tail, any_) for any_ in _ANY)), None)
    if record is None:
        return None
    blocks_start = end - len(tail) - sum(n for _, n in record.index)
    lo = max(0, blocks_start - MAX_SIZE)
    fp.seek(lo)
    before = fp.read(blocks_start - lo) if blocks_start > lo else b""
    at = before.find(MAGIC)
    while at >= 0:
        try:
            parsed = parse_header(before[at:])
        except NacrithError:
            parsed = None
        if parsed is not None and parsed[1] == len(before) - at:
            own = _end_record(tail, parsed[0])  # again, under the stream's own limits
            if own is not None and sum(n for n, _ in own.index) == own.total_len:
                return lo + at, before[at:], own
        at = before.find(MAGIC, at + 1)
    return None


def read_index(fp) -> Index | None:
    """The block index of a seekable file of one or more streams, from their ends (a few
    small reads per stream, no decoding); None when the file is not a sequence of
    complete streams (trailing data, damage): such files are read sequentially, which
    reports what is wrong, in stream order."""
    size = fp.seek(0, io.SEEK_END)
    fp.seek(0)
    parsed = parse_header(fp.read(min(size, MAX_SIZE)))  # FormatError if foreign
    if parsed is None:
        raise TruncatedError(INCOMPLETE)
    streams, end = [], size
    while end > 0:
        found = _stream_ending_at(fp, end) if len(streams) < MAX_STREAMS else None
        if found is None:
            return None
        streams.append(found)
        end = found[0]
    headers, stream, raw, offsets, ends = [], [], [0], [], []
    for n, (start, head, record) in enumerate(reversed(streams)):
        header = parse_header(head)[0]
        if header.content_size is not None and header.content_size != record.total_len:
            raise CorruptError(f"corrupt stream: stream {n + 1}'s header claims "
                               f"{header.content_size} bytes, its end record {record.total_len}")
        headers.append(head)
        pos = start + len(head)
        for raw_len, record_len in record.index:
            stream.append(n)
            raw.append(raw[-1] + raw_len)
            offsets.append(pos)
            pos += record_len
            ends.append(pos)
    return Index(tuple(headers), tuple(stream), tuple(raw), tuple(offsets), tuple(ends),
                 tuple(record.content for *_, record in reversed(streams)))


def original_size(fp) -> int | None:
    """The original size of a seekable file of complete streams, from their ends."""
    index = read_index(fp)
    return index.size if index else None
