"""The records after the header: blocks, and the END record with its footer.

    block   := kind:u8 ...fields... crc32:u32le        (crc over the record; from version 5
                                                        seeded with the stream key and the
                                                        block's number: see ``bind``)
      SEGMENTED  body_len body                          (versions 2 to 7)
        body := raw_len n_segments (method:u8 length)*n_segments
                [n_streams count*n_streams payload_len payload]   if a segment is MODEL
                [payload_len payload] for LZMA, ZSTD, PPMD in that order, if used
                [raw bytes]                                        if a segment is RAW
                digest:8B
      MODEL      raw_len n_streams count*n_streams payload_len payload digest:8B  (version 1)
      STORED     raw_len raw                                                       (version 1)
      END        n_blocks total_len (raw_len record_len)*n_blocks [content:8B]  (version 5;
                                                        from 8 none without blocks)
    footer  := end_record_len:u32le "NACE"

A segmented block is the block's bytes cut into segments, each with a method
(segments/classical.py): the MODEL segments, joined, are coded by the language
model, and the segments of each classical method, joined, by that method.

Parsing is incremental (``parse_record`` returns None when it needs more bytes)
and bounded: every length is checked against the header's limits before it is
trusted, so a hostile stream cannot make the reader buffer or allocate more than
one block's worth of bytes.  From version 5 a model part holds at most
``TOKENS_PER_BYTE`` tokens per byte of its payload (plus ``TOKENS_SLACK``), so
decoding time follows the stream's size, not its claims.
"""

from __future__ import annotations

import dataclasses
import struct
import zlib

from ..errors import CorruptError
from ..segments import classical
from .fields import FieldReader, varint, with_crc
from .header import BOUND, LEAN, Header

FOOTER_MAGIC = b"NACE"
FOOTER_SIZE = 8
KIND_END, KIND_MODEL, KIND_STORED, KIND_SEGMENTED = 0, 1, 2, 3
_KINDS = {1: (KIND_MODEL, KIND_STORED), 2: (KIND_SEGMENTED,), 3: (KIND_SEGMENTED,),
          4: (KIND_SEGMENTED,), 5: (KIND_SEGMENTED,), 6: (KIND_SEGMENTED,),
          7: (KIND_SEGMENTED,), 8: (KIND_SEGMENTED,)}
#: Version 5: a model part's tokens at most, per byte of its payload, and beyond that.
#: 32 tokens a byte is 0.25 bits a token; text that predictable is left to the
#: classical codecs, which do as well on it (pipeline/block.py).
TOKENS_PER_BYTE, TOKENS_SLACK = 32, 64


def max_tokens(payload_len: int) -> int:
    """The most tokens a version 5 model part of ``payload_len`` bytes may hold."""
    return TOKENS_PER_BYTE * payload_len + TOKENS_SLACK


def max_segments(raw_len: int) -> int:
    """The most segments a block of ``raw_len`` bytes may have (segments.regions keeps below)."""
    return raw_len // 16 + 2


def seed(key: bytes, number: int) -> int:
    """The CRC seed of block ``number`` of the stream of key ``key`` (version 5)."""
    return zlib.crc32(key + varint(number))


def bind(record: bytes, key: bytes, number: int) -> bytes:
    """A block record with its CRC seeded by the stream key and its number (version 5):
    block coders write records without knowing where they go; the writer binds them."""
    return with_crc(record[:-4], seed(key, number))


@dataclasses.dataclass(frozen=True)
class Block:
    kind: int
    raw_len: int
    payload: bytes = b""  # the model's payload (or a stored block's bytes)
    counts: tuple = ()  # tokens per stream of the model's payload
    digest: bytes = b""  # of the original bytes (model and segmented blocks)
    segments: tuple = ()  # (method, length) of each segment (segmented blocks)
    coded: dict = dataclasses.field(default_factory=dict)  # classical method -> payload

    def methods(self) -> dict:
        """Bytes of the block per method, in method order."""
        if self.kind != KIND_SEGMENTED:
            return {classical.MODEL if self.kind == KIND_MODEL else classical.RAW: self.raw_len}
        return dict(sorted(_method_sizes(self.segments).items()))


def _method_sizes(segments) -> dict:
    out: dict = {}
    for method, length in segments:
        out[method] = out.get(method, 0) + length
    return out


@dataclasses.dataclass(frozen=True)
class End:
    total_len: int
    index: tuple = ()  # (raw_len, record_len) of every block, in order
    content: bytes = b""  # content_digest of the blocks (version 5)


def pack_segmented(raw_len: int, segments, raw_digest: bytes, coded: dict,
                   counts=(), model_payload: bytes = b"") -> bytes:
    """A segmented block: ``segments`` lists (method, length); ``coded`` maps each
    classical method used to its payload, the model's payload is ``model_payload``."""
    if len(segments) > max_segments(raw_len):
        raise ValueError("too many segments for the block")
    used = {method for method, _ in segments}
    body = bytearray(varint(raw_len) + varint(len(segments)))
    for method, length in segments:
        body += bytes([method]) + varint(length)
    if classical.MODEL in used:
        body += varint(len(counts)) + b"".join(map(varint, counts))
        body += varint(len(model_payload)) + model_payload
    for method in classical.CODECS:
        if method in used:
            body += varint(len(coded[method])) + coded[method]
    if classical.RAW in used:
        body += coded[classical.RAW]
    body += raw_digest
    return with_crc(bytes([KIND_SEGMENTED]) + varint(len(body)) + bytes(body))


def _parse_model_part(r: FieldReader, header: Header, text_len: int,
                      payload_limit: int) -> tuple[tuple, bytes]:
    """Tokens per stream and the range coder's payload, for ``text_len`` bytes of text."""
    n_streams = r.varint(header.config.streams, "stream count")
    counts = tuple(r.varint(text_len, "stream length") for _ in range(n_streams))
    if sum(counts) > text_len or not all(counts):
        raise CorruptError("corrupt stream: stream lengths do not fit the block")
    payload = r.take(r.varint(payload_limit, "payload length"))
    if header.version >= BOUND and sum(counts) > max_tokens(len(payload)):
        raise CorruptError(f"corrupt stream: a block claims {sum(counts)} tokens for a payload "
                           f"of {len(payload)} bytes (at most {max_tokens(len(payload))})")
    return counts, payload


def _parse_segments(body: FieldReader, raw_len: int) -> tuple:
    n = body.varint(max_segments(raw_len), "segment count")
    segments = tuple((body.take(1)[0], body.varint(raw_len, "segment length")) for _ in range(n))
    for method, length in segments:
        if method not in classical.NAMES or not length:
            raise CorruptError(f"corrupt stream: bad segment (method {method}, {length} bytes)")
    if sum(length for _, length in segments) != raw_len:
        raise CorruptError("corrupt stream: the segments do not add up to the block")
    return segments


def _parse_segmented(r: FieldReader, header: Header) -> Block:
    limit = header.config.block_size
    body = FieldReader(r.take(r.varint(2 * limit + 4096, "record length")))  # all here: one pass
    try:
        raw_len = body.varint(limit, "block length")
        segments = _parse_segments(body, raw_len)
        sizes = _method_sizes(segments)
        counts, model_payload = (), b""
        if classical.MODEL in sizes:
            counts, model_payload = _parse_model_part(body, header, sizes[classical.MODEL],
                                                      raw_len)
        coded = {m: body.take(body.varint(2 * raw_len + 1024, "payload length"))
                 for m in classical.CODECS if m in sizes}
        if classical.RAW in sizes:
            coded[classical.RAW] = body.take(sizes[classical.RAW])
        digest_ = body.take(8)
    except FieldReader.More:
        raise CorruptError("corrupt stream: a block's fields overrun its record") from None
    if body.pos != len(body.buf):
        raise CorruptError("corrupt stream: a block record is longer than its fields")
    return Block(KIND_SEGMENTED, raw_len, model_payload, counts, digest_, segments, coded)


def pack_end(total_len: int, index, content: bytes = b"") -> bytes:
    """The END record and footer; ``index`` lists (raw_len, record_len) per block,
    ``content`` is the content_digest (version 5)."""
    body = bytearray([KIND_END]) + varint(len(index)) + varint(total_len)
    for raw_len, record_len in index:
        body += varint(raw_len) + varint(record_len)
    record = with_crc(bytes(body) + content)
    return record + struct.pack("<I", len(record)) + FOOTER_MAGIC


def _parse_end(r: FieldReader, header: Header, max_blocks: int) -> End:
    limit = header.config.block_size
    n_blocks = r.varint(max_blocks, "block count")
    total = r.varint(1 << 62, "total length")
    index = tuple((r.varint(limit, "block length"), r.varint(1 << 32, "record length"))
                  for _ in range(n_blocks))
    digested = header.version >= BOUND and (n_blocks or header.version < LEAN)
    return End(total, index, r.take(8) if digested else b"")


def _parse_block(r: FieldReader, kind: int, header: Header, pos: int) -> Block:
    limit = header.config.block_size
    if kind not in _KINDS[header.version]:
        raise CorruptError(f"corrupt stream: unknown record kind {kind} at offset {r.offset(pos)}")
    if kind == KIND_SEGMENTED:
        return _parse_segmented(r, header)
    raw_len = r.varint(limit, "block length")
    if kind == KIND_STORED:
        return Block(kind, raw_len, r.take(raw_len))
    counts, payload = _parse_model_part(r, header, raw_len, raw_len)
    return Block(kind, raw_len, payload, counts, r.take(8))


def parse_record(buf, pos: int, header: Header, max_blocks: int,
                 number: int | None = None, origin: int = 0) -> tuple[Block | End, int] | None:
    """Parse the record at ``buf[pos:]``: (record, end offset) or None for 'more'.

    Lengths are bounded by the header's block size, and the END record's
    index by ``max_blocks`` (the blocks a reader has seen), before anything
    is awaited, so at most one record's worth of input is ever buffered.
    A block is block number ``number`` of its stream (``max_blocks`` unless
    given: a block read alone, random access), which its CRC covers from version 5.
    ``origin`` is the stream offset of ``buf[0]`` (a reader that dropped what it parsed),
    so that a message names the offset ``nacrith info`` names.
    """
    number = max_blocks if number is None else number
    r = FieldReader(buf, pos, origin)
    try:
        kind = r.take(1)[0]
        if kind == KIND_END:
            record = _parse_end(r, header, max_blocks)
        else:
            record = _parse_block(r, kind, header, pos)
        bound = header.version >= BOUND and kind != KIND_END and header.key
        r.check_crc(pos, "block", seed(header.key, number) if bound else 0)
        if kind == KIND_END:
            length, magic = struct.unpack("<I4s", r.take(FOOTER_SIZE))
            if magic != FOOTER_MAGIC or length != r.pos - FOOTER_SIZE - pos:
                raise CorruptError(f"corrupt stream: bad footer after the end record at offset {r.offset(pos)}")
    except FieldReader.More:
        return None
    return record, r.pos


def parse_tail(tail: bytes, header: Header, max_blocks: int) -> End:
    """The END record of a stream from the bytes at its end (footer included)."""
    if len(tail) < FOOTER_SIZE:
        raise CorruptError("corrupt stream: too short for a footer")
    length, magic = struct.unpack("<I4s", tail[-FOOTER_SIZE:])
    if magic != FOOTER_MAGIC or length + FOOTER_SIZE > len(tail):
        raise CorruptError("corrupt stream: no nacrith footer at the end of the data")
    start = len(tail) - FOOTER_SIZE - length
    parsed = parse_record(tail, start, header, max_blocks)
    if parsed is None or not isinstance(parsed[0], End) or parsed[1] != len(tail):
        raise CorruptError("corrupt stream: the footer does not point at an end record")
    return parsed[0]
