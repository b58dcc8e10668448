"""The field encodings every record uses: varints, bounded reads, checksums."""

from __future__ import annotations

import hashlib
import struct
import zlib

from ..errors import CorruptError

MAX_TEXT = 4096  # bytes of a header's text field at most


def varint(n: int) -> bytes:
    """``n`` (an integer >= 0) as an unsigned LEB128 varint."""
    if n < 0:
        raise ValueError(f"a varint field holds integers >= 0, not {n}")
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def text(value: str) -> bytes:
    """A text field: its UTF-8 length, then its bytes (at most MAX_TEXT)."""
    raw = value.encode("utf-8")[:MAX_TEXT]
    return varint(len(raw)) + raw


def digest(data: bytes) -> bytes:
    """The checksum of a block's original bytes."""
    return hashlib.blake2b(data, digest_size=8).digest()


def content_digest(digests) -> bytes:
    """The END record's check of a stream's whole content: its blocks' digests, in order."""
    return hashlib.blake2b(b"".join(digests), digest_size=8).digest()


def with_crc(body: bytes, seed: int = 0) -> bytes:
    return body + struct.pack("<I", zlib.crc32(body, seed))


class FieldReader:
    """Reads fields from a buffer; ``FieldReader.More`` means 'more input'."""

    class More(Exception):
        pass

    def __init__(self, buf, pos: int = 0, origin: int = 0):
        self.buf, self.pos = buf, pos
        self.origin = origin  # the stream offset of buf[0], for messages

    def offset(self, pos: int) -> int:
        """The stream offset of ``buf[pos]``: what a message names."""
        return self.origin + pos

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.buf):
            raise self.More
        out = bytes(self.buf[self.pos:self.pos + n])
        self.pos += n
        return out

    def varint(self, limit: int, what: str) -> int:
        value = shift = 0
        for _ in range(10):
            byte = self.take(1)[0]
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                if value > limit:
                    raise CorruptError(f"corrupt stream: {what} {value} exceeds its limit {limit}")
                return value
        raise CorruptError(f"corrupt stream: overlong varint for {what}")

    def text(self, what: str) -> str:
        raw = self.take(self.varint(MAX_TEXT, what))
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise CorruptError(f"corrupt stream: {what} is not UTF-8") from None

    def check_crc(self, start: int, what: str, seed: int = 0):
        """The CRC-32 that follows the fields read since ``start``."""
        expected = zlib.crc32(self.buf[start:self.pos], seed)
        (stored,) = struct.unpack("<I", self.take(4))
        if stored != expected:
            raise CorruptError(f"corrupt stream: {what} checksum mismatch at offset {self.offset(start)}"
                               + (" (damaged, or a block moved, repeated or taken from another "
                                  "stream)" if seed else ""))
