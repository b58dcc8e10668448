"""The byte layout of a nacrith stream: a header, blocks, an end record.

    stream  := header block* end
    header  := "NACR" version:u8 body_len:u16le body crc32:u32le
    body    := flags:u8 model_sha256:32B config [content_size] name:str env:str  (varints)
    config  := block_size streams min_stream_tokens window slide sink
               ngram_order ngram_bits match_min bias_rate_ppm mixer_rate_ppm skip_ppm
               float_bits
               (versions 1 and 2 end after sink: the model alone, no ensemble;
               version 3 ends after skip_ppm: float64 arithmetic)
    body v6 := flags:u8 model:8B changed:u16le value*  [content_size] [name:str] [env:str]
               model: the first 8 bytes of the model file's SHA-256;
               changed: bit i set when V6_FIELDS[i] differs from V6_DEFAULTS, its
               value (a varint) following in field order; flags: 1 content size,
               2 name (absent: the bundled model's file), 4 env (llama.cpp streams
               only), 8 engine llama.cpp (else exact); exact arithmetic throughout
    block   := kind:u8 ...fields... crc32:u32le        (crc over the record; from version 5
                                                        seeded with the stream key and the
                                                        block's number: see ``bind``)
      SEGMENTED  body_len body                          (versions 2 to 5)
        body := raw_len n_segments (method:u8 length)*n_segments
                [n_streams count*n_streams payload_len payload]   if a segment is TEXT
                [payload_len payload] for LZMA, ZSTD, PPMD in that order, if used
                [raw bytes]                                        if a segment is RAW
                digest:8B
      NEURAL     raw_len n_streams count*n_streams payload_len payload digest:8B  (version 1)
      STORED     raw_len raw                                                       (version 1)
      END        n_blocks total_len (raw_len record_len)*n_blocks [content:8B]  (version 5)
    footer  := end_record_len:u32le "NACE"

Version 5 binds every block to its place: a block's CRC is seeded with the
stream key (a hash of the header's bytes) and the block's number, and the END
record carries a digest of every block's digest in order, so that a record
moved, repeated, dropped or taken from another stream is an error, never
other bytes.  It also bounds the work a block can ask for: a model part holds
at most ``TOKENS_PER_BYTE`` tokens per byte of its payload (plus
``TOKENS_SLACK``), so decoding time follows the stream's size, not its claims.

A segmented block is the block's bytes cut into segments, each with a method
(classical.py): the TEXT segments, joined, are coded by the language model,
and the segments of each classical method, joined, by that method.  Version 1
streams (model and stored blocks only) are still read.

The END record indexes every block, and the fixed footer lets a reader find
it from the end of the file: the logical size and the offset of any block are
known from two small reads (random access, listings of compressed objects).

Every record carries a CRC-32 of its own bytes, so any damage to the stream is
detected before decoding; neural blocks also carry a BLAKE2b-64 digest of the
original bytes, so a decode that went wrong (another model, another llama.cpp
build) is detected after it.  The stream is self-delimiting: bytes after the
END record are not read.

Parsing is incremental (``parse_*`` return ``None`` when they need more bytes)
and bounded: every length is checked against the header's limits before it is
trusted, so a hostile header cannot make the reader buffer or allocate more
than one block's worth of bytes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import struct
import zlib

from . import classical
from .config import MODEL_ALONE, CodecConfig
from .errors import CorruptError, FormatError
from .sniff import describe

#: The file name suffix of nacrith streams (``FILE`` -> ``FILE.nc``).
SUFFIX = ".nc"
MAGIC = b"NACR"
FOOTER_MAGIC = b"NACE"
FOOTER_SIZE = 8
VERSION = 6  # written; every version in READABLE is read
READABLE = (1, 2, 3, 4, 5, 6)
KIND_END, KIND_NEURAL, KIND_STORED, KIND_SEGMENTED = 0, 1, 2, 3
_KINDS = {1: (KIND_NEURAL, KIND_STORED), 2: (KIND_SEGMENTED,), 3: (KIND_SEGMENTED,),
          4: (KIND_SEGMENTED,), 5: (KIND_SEGMENTED,), 6: (KIND_SEGMENTED,)}
_FLAG_CONTENT_SIZE, _FLAG_NAME, _FLAG_ENV, _FLAG_LLAMA = 1, 2, 4, 8
#: Version 6's header fields, in their order, and the values a header leaves out.  Both
#: are the format: they never change (a new version would list its own).
V6_FIELDS = ("block_size", "streams", "min_stream_tokens", "window", "slide", "sink",
             "ngram_order", "ngram_bits", "match_min", "bias_rate_ppm", "mixer_rate_ppm",
             "skip_ppm", "float_bits")
V6_DEFAULTS = dict(block_size=256 << 10, streams=8, min_stream_tokens=512, window=1024,
                   slide=256, sink=1, ngram_order=4, ngram_bits=18, match_min=6,
                   bias_rate_ppm=100000, mixer_rate_ppm=2000, skip_ppm=0, float_bits=32)
V6_MODEL_BYTES = 8  # of the model's SHA-256: an accidental match is a 2**-64 chance
_MAX_HEADER_BODY = 8192
_MAX_TEXT = 4096
_CONFIG_FIELDS = [f.name for f in dataclasses.fields(CodecConfig)]
_LAST_FIELD = {1: "sink", 2: "sink", 3: "skip_ppm", 4: "float_bits", 5: "float_bits"}
COMPACT = 6  # the first version with the compact header and exact arithmetic
BOUND = 5  # the first version whose blocks are bound to their place
#: Version 5: a model part's tokens at most, per byte of its payload, and beyond that.
#: 32 tokens a byte is 0.25 bits a token; text that predictable is left to the
#: classical codecs, which do as well on it (block.py).
TOKENS_PER_BYTE, TOKENS_SLACK = 32, 64
#: What the versions that lack a field did: no ensemble (1-2), float64 arithmetic (1-3),
#: llama.cpp and numpy's exp (1-5).
_ABSENT = {**MODEL_ALONE, "float_bits": 64, "engine": "llama.cpp", "exact": 0}


def _config_fields(version: int) -> list[str]:
    return _CONFIG_FIELDS[:_CONFIG_FIELDS.index(_LAST_FIELD[version]) + 1]


def digest(data: bytes) -> bytes:
    """The checksum of a block's original bytes."""
    return hashlib.blake2b(data, digest_size=8).digest()


def content_digest(digests) -> bytes:
    """The END record's check of a stream's whole content: its blocks' digests, in order."""
    return hashlib.blake2b(b"".join(digests), digest_size=8).digest()


def stream_key(head: bytes) -> bytes:
    """What binds a stream's blocks to it: a hash of its header's bytes."""
    return hashlib.blake2b(head, digest_size=8, person=b"nacrith-key").digest()


def _seed(key: bytes, number: int) -> int:
    return zlib.crc32(key + _varint(number))


def bind(record: bytes, key: bytes, number: int) -> bytes:
    """A block record with its CRC seeded by the stream key and its number (version 5):
    block coders write records without knowing where they go; the writer binds them."""
    body = record[:-4]
    return body + struct.pack("<I", zlib.crc32(body, _seed(key, number)))


def key_of(head: bytes) -> bytes:
    """The stream key of a header's bytes; b"" for versions whose blocks are not bound."""
    return stream_key(head) if head[len(MAGIC)] >= BOUND else b""


def max_tokens(payload_len: int) -> int:
    """The most tokens a version 5 model part of ``payload_len`` bytes may hold."""
    return TOKENS_PER_BYTE * payload_len + TOKENS_SLACK


@dataclasses.dataclass(frozen=True)
class Header:
    config: CodecConfig
    model_sha256: bytes  # 32 bytes; version 6: the first V6_MODEL_BYTES
    model_name: str  # version 6: "" for the bundled model
    env: str  # JSON description of the writer's llama.cpp build ("" for the exact engine)
    content_size: int | None = None
    version: int = VERSION
    key: bytes = b""  # stream_key of the header's bytes (set when parsed, version 5)


@dataclasses.dataclass(frozen=True)
class Block:
    kind: int
    raw_len: int
    payload: bytes = b""  # the model's payload (or a stored block's bytes)
    counts: tuple = ()  # tokens per stream of the model's payload
    digest: bytes = b""  # of the original bytes (neural and segmented blocks)
    segments: tuple = ()  # (method, length) of each segment (segmented blocks)
    coded: dict = dataclasses.field(default_factory=dict)  # classical method -> payload

    def methods(self) -> dict:
        """Bytes of the block per method, in method order."""
        if self.kind != KIND_SEGMENTED:
            return {classical.TEXT if self.kind == KIND_NEURAL else classical.RAW: self.raw_len}
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


# -- varints (unsigned LEB128) -------------------------------------------------

def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


class _Reader:
    """Reads fields from a buffer; ``None`` from ``need`` means 'more input'."""

    class More(Exception):
        pass

    def __init__(self, buf, pos: int = 0):
        self.buf, self.pos = buf, pos

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
        raw = self.take(self.varint(_MAX_TEXT, what))
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise CorruptError(f"corrupt stream: {what} is not UTF-8") from None


def _check_crc(buf, start: int, reader: _Reader, what: str, seed: int = 0):
    expected = zlib.crc32(buf[start:reader.pos], seed)
    (stored,) = struct.unpack("<I", reader.take(4))
    if stored != expected:
        raise CorruptError(f"corrupt stream: {what} checksum mismatch at offset {start}"
                           + (" (damaged, or a block moved, repeated or taken from another "
                              "stream)" if seed else ""))


# -- header --------------------------------------------------------------------

def pack_header(h: Header) -> bytes:
    if h.version >= COMPACT:
        body = _pack_compact(h)
    else:
        if len(h.model_sha256) != 32:
            raise ValueError("a version 1-5 header holds the model's whole SHA-256")
        body = bytearray([_FLAG_CONTENT_SIZE if h.content_size is not None else 0])
        body += h.model_sha256
        for name in _config_fields(h.version):
            body += _varint(getattr(h.config, name))
        if h.content_size is not None:
            body += _varint(h.content_size)
        for text in (h.model_name, h.env):
            raw = text.encode("utf-8")[:_MAX_TEXT]
            body += _varint(len(raw)) + raw
    head = bytes([h.version]) + struct.pack("<H", len(body)) + body
    return MAGIC + head + struct.pack("<I", zlib.crc32(head))


def _pack_compact(h: Header) -> bytearray:
    c = h.config
    if not c.exact:
        raise ValueError("version 6 streams use exact arithmetic (exact=1)")
    flags = ((_FLAG_CONTENT_SIZE if h.content_size is not None else 0)
             | (_FLAG_NAME if h.model_name else 0) | (_FLAG_ENV if h.env else 0)
             | (_FLAG_LLAMA if c.engine == "llama.cpp" else 0))
    changed = [i for i, name in enumerate(V6_FIELDS) if getattr(c, name) != V6_DEFAULTS[name]]
    body = bytearray([flags]) + h.model_sha256[:V6_MODEL_BYTES]
    body += struct.pack("<H", sum(1 << i for i in changed))
    body += b"".join(_varint(getattr(c, V6_FIELDS[i])) for i in changed)
    if h.content_size is not None:
        body += _varint(h.content_size)
    for text in (h.model_name, h.env):
        if text:
            raw = text.encode("utf-8")[:_MAX_TEXT]
            body += _varint(len(raw)) + raw
    return body


def environment(env: str) -> dict | None:
    """A header's record of the writer's environment as data: a flat JSON object of
    names and plain values, or None for anything else (a stream's writer chose it)."""
    try:
        value = json.loads(env)
    except (ValueError, RecursionError):
        return None
    plain = (str, int, float, bool, type(None))
    if not isinstance(value, dict) or not all(isinstance(v, plain) for v in value.values()):
        return None
    return value


def starts_stream(buf) -> bool | None:
    """Whether ``buf`` starts with the magic: True, False, or None while it is a prefix of it."""
    head = bytes(buf[:len(MAGIC)])
    if head != MAGIC[:len(head)]:
        return False
    return True if len(head) == len(MAGIC) else None


def not_a_stream(buf) -> FormatError:
    """The error for input that does not start with the magic, saying what it looks like."""
    return FormatError(f"not a nacrith stream (bad magic bytes): {describe(buf)}")


def parse_header(buf) -> tuple[Header, int] | None:
    """Parse the header at the start of ``buf``: (header, end offset) or None."""
    if starts_stream(buf) is False:
        raise not_a_stream(buf)
    if len(buf) >= len(MAGIC) + 1 and buf[len(MAGIC)] not in READABLE:
        raise FormatError(
            f"unsupported nacrith format version {buf[len(MAGIC)]} (this build reads "
            f"versions {', '.join(map(str, READABLE))}); upgrade nacrith-codec to read it")
    r = _Reader(buf, len(MAGIC) + 1)
    try:
        (body_len,) = struct.unpack("<H", r.take(2))
        if body_len > _MAX_HEADER_BODY:
            raise CorruptError(f"corrupt stream: header length {body_len} is too large")
        r.take(body_len)  # the whole body is here before it is parsed
        _check_crc(buf, len(MAGIC), r, "header")
    except _Reader.More:
        return None
    end = r.pos
    r.pos = len(MAGIC) + 3
    version = buf[len(MAGIC)]
    try:
        fields = (_parse_compact if version >= COMPACT else _parse_body)(r, version)
    except _Reader.More:
        raise CorruptError("corrupt stream: header fields overrun the header") from None
    return Header(*fields, version, key_of(bytes(buf[:end]))), end


def _config(values: dict) -> CodecConfig:
    config = CodecConfig.__new__(CodecConfig)
    for name, value in values.items():
        object.__setattr__(config, name, value)
    return config.validate(CorruptError)


def _parse_body(r: _Reader, version: int) -> tuple:
    flags = r.take(1)[0]
    if flags & ~_FLAG_CONTENT_SIZE:
        raise FormatError(f"unsupported header flags {flags:#x}; upgrade nacrith-codec")
    sha = r.take(32)
    values = {**CodecConfig().as_dict(), **_ABSENT}
    values.update((name, r.varint(1 << 32, name)) for name in _config_fields(version))
    config = _config(values)
    size = r.varint(1 << 62, "content size") if flags & _FLAG_CONTENT_SIZE else None
    return config, sha, r.text("model name"), r.text("environment"), size


def _parse_compact(r: _Reader, version: int) -> tuple:
    flags = r.take(1)[0]
    if flags & ~(_FLAG_CONTENT_SIZE | _FLAG_NAME | _FLAG_ENV | _FLAG_LLAMA):
        raise FormatError(f"unsupported header flags {flags:#x}; upgrade nacrith-codec")
    sha = r.take(V6_MODEL_BYTES)
    (changed,) = struct.unpack("<H", r.take(2))
    if changed >> len(V6_FIELDS):
        raise CorruptError(f"corrupt stream: header field mask {changed:#x} names unknown fields")
    values = {**CodecConfig().as_dict(), **V6_DEFAULTS,
              "engine": "llama.cpp" if flags & _FLAG_LLAMA else "exact", "exact": 1}
    values.update((name, r.varint(1 << 32, name)) for i, name in enumerate(V6_FIELDS)
                  if changed >> i & 1)
    config = _config(values)
    size = r.varint(1 << 62, "content size") if flags & _FLAG_CONTENT_SIZE else None
    name = r.text("model name") if flags & _FLAG_NAME else ""
    env = r.text("environment") if flags & _FLAG_ENV else ""
    return config, sha, name, env, size


# -- blocks --------------------------------------------------------------------

def _record(body: bytes) -> bytes:
    return body + struct.pack("<I", zlib.crc32(body))


def max_segments(raw_len: int) -> int:
    """The most segments a block of ``raw_len`` bytes may have (segments.regions keeps below)."""
    return raw_len // 16 + 2


def pack_segmented(raw_len: int, segments, raw_digest: bytes, coded: dict,
                   counts=(), neural: bytes = b"") -> bytes:
    """A segmented block: ``segments`` lists (method, length); ``coded`` maps each
    classical method used to its payload, the model's payload is ``neural``."""
    if len(segments) > max_segments(raw_len):
        raise ValueError("too many segments for the block")
    used = {method for method, _ in segments}
    body = bytearray(_varint(raw_len) + _varint(len(segments)))
    for method, length in segments:
        body += bytes([method]) + _varint(length)
    if classical.TEXT in used:
        body += _varint(len(counts)) + b"".join(map(_varint, counts))
        body += _varint(len(neural)) + neural
    for method in classical.CODECS:
        if method in used:
            body += _varint(len(coded[method])) + coded[method]
    if classical.RAW in used:
        body += coded[classical.RAW]
    body += raw_digest
    return _record(bytes([KIND_SEGMENTED]) + _varint(len(body)) + bytes(body))


def _parse_model_part(r: "_Reader", header: Header, text_len: int,
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


def _parse_segmented(r: "_Reader", header: Header) -> Block:
    limit = header.config.block_size
    body = _Reader(r.take(r.varint(2 * limit + 4096, "record length")))  # all here: one pass
    try:
        raw_len = body.varint(limit, "block length")
        n = body.varint(max_segments(raw_len), "segment count")
        segments = tuple((body.take(1)[0], body.varint(raw_len, "segment length")) for _ in range(n))
        for method, length in segments:
            if method not in classical.NAMES or not length:
                raise CorruptError(f"corrupt stream: bad segment (method {method}, {length} bytes)")
        sizes = _method_sizes(segments)
        if sum(sizes.values()) != raw_len:
            raise CorruptError("corrupt stream: the segments do not add up to the block")
        counts, neural = (), b""
        if classical.TEXT in sizes:
            counts, neural = _parse_model_part(body, header, sizes[classical.TEXT], raw_len)
        coded = {m: body.take(body.varint(2 * raw_len + 1024, "payload length"))
                 for m in classical.CODECS if m in sizes}
        if classical.RAW in sizes:
            coded[classical.RAW] = body.take(sizes[classical.RAW])
        digest_ = body.take(8)
    except _Reader.More:
        raise CorruptError("corrupt stream: a block's fields overrun its record") from None
    if body.pos != len(body.buf):
        raise CorruptError("corrupt stream: a block record is longer than its fields")
    return Block(KIND_SEGMENTED, raw_len, neural, counts, digest_, segments, coded)


def pack_end(total_len: int, index, content: bytes = b"") -> bytes:
    """The END record and footer; ``index`` lists (raw_len, record_len) per block,
    ``content`` is the content_digest (version 5)."""
    body = bytearray([KIND_END]) + _varint(len(index)) + _varint(total_len)
    for raw_len, record_len in index:
        body += _varint(raw_len) + _varint(record_len)
    record = _record(bytes(body) + content)
    return record + struct.pack("<I", len(record)) + FOOTER_MAGIC


class StreamWriter:
    """Frames one stream: its header, then each block record bound to its number (version
    5), then the END record over them all.  Every writer of streams uses it."""

    def __init__(self, header: Header):
        self.head = pack_header(header)
        self._key = key_of(self.head)
        self.index: list = []  # (raw_len, record_len) of each block written
        self.total = 0
        self._digests: list = []

    def block(self, record: bytes, raw_len: int) -> bytes:
        """The next block's record as it goes into the stream."""
        if self._key:
            record = bind(record, self._key, len(self.index))
            self._digests.append(record[-12:-4])  # a segmented record ends digest, CRC
        self.index.append((raw_len, len(record)))
        self.total += raw_len
        return record

    def end(self) -> bytes:
        return pack_end(self.total, self.index,
                        content_digest(self._digests) if self._key else b"")


def parse_record(buf, pos: int, header: Header, max_blocks: int,
                 number: int | None = None) -> tuple[Block | End, int] | None:
    """Parse the record at ``buf[pos:]``: (record, end offset) or None for 'more'.

    Lengths are bounded by the header's block size, and the END record's
    index by ``max_blocks`` (the blocks a reader has seen), before anything
    is awaited, so at most one record's worth of input is ever buffered.
    A block is block number ``number`` of its stream (``max_blocks`` unless
    given: a block read alone, random access), which its CRC covers from version 5.
    """
    number = max_blocks if number is None else number
    limit = header.config.block_size
    r = _Reader(buf, pos)
    try:
        kind = r.take(1)[0]
        if kind == KIND_END:
            n_blocks = r.varint(max_blocks, "block count")
            total = r.varint(1 << 62, "total length")
            index = tuple((r.varint(limit, "block length"), r.varint(1 << 32, "record length"))
                          for _ in range(n_blocks))
            record = End(total, index, r.take(8) if header.version >= BOUND else b"")
        elif kind not in _KINDS[header.version]:
            raise CorruptError(f"corrupt stream: unknown record kind {kind} at offset {pos}")
        elif kind == KIND_SEGMENTED:
            record = _parse_segmented(r, header)
        elif kind == KIND_STORED:
            raw_len = r.varint(limit, "block length")
            record = Block(kind, raw_len, r.take(raw_len))
        elif kind == KIND_NEURAL:
            raw_len = r.varint(limit, "block length")
            counts, payload = _parse_model_part(r, header, raw_len, raw_len)
            record = Block(kind, raw_len, payload, counts, r.take(8))
        bound = header.version >= BOUND and kind != KIND_END and header.key
        _check_crc(buf, pos, r, "block", _seed(header.key, number) if bound else 0)
        if kind == KIND_END:
            length, magic = struct.unpack("<I4s", r.take(FOOTER_SIZE))
            if magic != FOOTER_MAGIC or length != r.pos - FOOTER_SIZE - pos:
                raise CorruptError(f"corrupt stream: bad footer after the end record at {pos}")
    except _Reader.More:
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
