"""The stream header: which format version, model, engine and parameters a stream needs.

    header  := "NACR" version:u8 body_len:u16le body crc32:u32le
    body    := flags:u8 model_sha256:32B FIELDS[version] [content_size] name:str env:str
               (versions 1 to 5; every value a varint; flags: 1 content size)
    body v6 := flags:u8 model:8B changed:u16le value* [content_size] [name:str] [env:str]
               model: the first 8 bytes of the model file's SHA-256;
               changed: bit i set when FIELDS[6][i] differs from V6_DEFAULTS, its
               value following in field order; flags: 1 content size, 2 name (absent:
               the bundled model's file), 4 env (llama.cpp streams only), 8 engine
               llama.cpp (else exact); exact arithmetic throughout
    body v7 := v6's, with FIELDS[7] and V7_DEFAULTS (the neural cache's two fields)
    head v8 := "NACR" 8 body_len:varint body crc32:u32le
    body v8 := flags:u8 [model:8B changed:varint value* [content_size] [name:str] [env]]
               v7's fields in FIELDS[8]'s order (those levels change first) against
               V8_DEFAULTS (the exact engine's 384 tokens a stream); flags as v6's, and
               16: an empty stream (nothing follows the flags: no data, so no model or
               parameter is needed), 32: env as JSON text (one env8 cannot hold);
               name: only for a model file that is not a named one (MODELS); env8 :=
               n:varint (feature:u8 | 0xFF name:str)*n llama_cpp_python:str gpu_layers:varint,
               each CPU feature as its index in CPU_FEATURES; and the END record of a
               stream without blocks holds no content digest (records.py)

Streams are written in version 8; ``format_version=6`` or ``7`` writes what those
versions wrote (for readers of older releases; version 6 holds no neural cache).

Each version's fields are listed here, in their order, and never change: a new
version lists its own.  What a version lacks, its decoder does as ``ABSENT`` says.
The environment (what a llama.cpp engine's logits depend on) is data here, a flat
mapping of names to plain values, written as canonical JSON.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import struct
import zlib

from ..config import MODEL_ALONE, CodecConfig
from ..errors import CorruptError, FormatError
from .fields import FieldReader, text, varint
from .sniff import what_it_looks_like

MAGIC = b"NACR"
VERSION = 8  # the newest, written by default; every version in READABLE is read
READABLE = (1, 2, 3, 4, 5, 6, 7, 8)
WRITABLE = (6, 7, 8)  # what format_version may ask for
BOUND = 5  # the first version whose blocks are bound to their place
COMPACT = 6  # the first version with the compact header and exact arithmetic
LEAN = 8  # the first with varint lengths, empty streams, named models unnamed, env8
_MODEL_ALONE_FIELDS = ("block_size", "streams", "min_stream_tokens", "window", "slide", "sink")
_ENSEMBLE_FIELDS = _MODEL_ALONE_FIELDS + ("ngram_order", "ngram_bits", "match_min",
                                          "bias_rate_ppm", "mixer_rate_ppm", "skip_ppm")
#: The parameters each version's header holds, in their order.
FIELDS = {1: _MODEL_ALONE_FIELDS, 2: _MODEL_ALONE_FIELDS, 3: _ENSEMBLE_FIELDS,
          4: _ENSEMBLE_FIELDS + ("float_bits",), 5: _ENSEMBLE_FIELDS + ("float_bits",),
          6: _ENSEMBLE_FIELDS + ("float_bits",),
          7: _ENSEMBLE_FIELDS + ("float_bits", "cache_size", "cache_theta"),
          8: ("streams", "window", "slide", "cache_size", "min_stream_tokens", "skip_ppm",
              "block_size", "sink", "ngram_order", "ngram_bits", "match_min", "bias_rate_ppm",
              "mixer_rate_ppm", "float_bits", "cache_theta")}
#: The values a version 6 header leaves out.
V6_DEFAULTS = dict(block_size=256 << 10, streams=8, min_stream_tokens=512, window=1024,
                   slide=256, sink=1, ngram_order=4, ngram_bits=18, match_min=6,
                   bias_rate_ppm=100000, mixer_rate_ppm=2000, skip_ppm=0, float_bits=32)
V7_DEFAULTS = {**V6_DEFAULTS, "cache_size": 32768, "cache_theta": 50}
V8_DEFAULTS = {**V7_DEFAULTS, "min_stream_tokens": 384}
#: What a compact header's decoder takes for each field it does not list (v6: no cache).
_COMPACT_DEFAULTS = {6: {**V6_DEFAULTS, "cache_size": 0}, 7: V7_DEFAULTS, 8: V8_DEFAULTS}
#: Version 8: the CPU features llama.cpp reports, each written as its index here (a name
#: not listed is written out); this order never changes.
CPU_FEATURES = ("SSE3", "SSSE3", "AVX", "AVX_VNNI", "AVX2", "F16C", "FMA", "BMI2", "AVX512",
                "AVX512_VBMI", "AVX512_VNNI", "AVX512_BF16", "AMX_INT8", "NEON", "ARM_FMA",
                "FP16_VA", "MATMUL_INT8", "SVE", "DOTPROD", "SME", "RISCV_V", "VSX",
                "WASM_SIMD", "LLAMAFILE", "OPENMP", "REPACK", "KLEIDIAI")
_SPELLED = 0xFF  # a feature not in CPU_FEATURES: its name follows
V6_MODEL_BYTES = 8  # of the model's SHA-256: an accidental match is a 2**-64 chance
#: What the versions that lack a field did: no ensemble (1-2), float64 arithmetic (1-3),
#: llama.cpp and numpy's exp (1-5).
ABSENT = {**MODEL_ALONE, "float_bits": 64, "engine": "llama.cpp", "exact": 0}
_FLAG_CONTENT_SIZE, _FLAG_NAME, _FLAG_ENV, _FLAG_LLAMA = 1, 2, 4, 8
_FLAG_EMPTY, _FLAG_ENV_JSON = 16, 32  # version 8
_FLAGS = {6: 15, 7: 15, 8: 63}  # the flags each compact version knows
_MAX_BODY = 8192
MAX_SIZE = len(MAGIC) + 3 + _MAX_BODY + 4  # the largest header


@dataclasses.dataclass(frozen=True)
class Header:
    config: CodecConfig
    model_sha256: bytes  # 32 bytes; version 6: the first V6_MODEL_BYTES; b"": an empty stream
    model_name: str  # versions 6-7: "" for the bundled model; 8: "" for any named model
    env: dict  # the writer's llama.cpp build and CPU ({} for the exact engine)
    content_size: int | None = None
    version: int = VERSION
    key: bytes = b""  # stream_key of the header's bytes (set when parsed, version 5)


def version_for(config: CodecConfig, asked: int | None = None) -> int:
    """The version a stream of ``config`` is written in: ``asked`` (a ``format_version``
    option: None for the newest), checked to hold it."""
    if asked is None:
        return VERSION
    if isinstance(asked, bool) or asked not in WRITABLE:
        raise ValueError(f"format_version must be one of {', '.join(map(str, WRITABLE))} "
                         f"(the versions this release writes), not {asked!r}")
    if asked == COMPACT and config.cache_size:
        raise ValueError("format version 6 has no neural cache: give cache_size=0 with it")
    return asked


def env_text(env: dict) -> str:
    """The environment as a header holds it: canonical JSON ("" for none)."""
    if not isinstance(env, dict):
        raise TypeError(f"a header's environment is a dict, not {type(env).__name__}")
    return json.dumps(env, sort_keys=True, separators=(",", ":")) if env else ""


def env_data(raw: str) -> dict:
    """A header's environment text as data: its flat JSON object of names and plain
    values, else {"environment": raw} (the stream's writer chose it), {} for none."""
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        value = None
    plain = (str, int, float, bool, type(None))
    if not isinstance(value, dict) or not all(isinstance(v, plain) for v in value.values()):
        return {"environment": raw}
    return value


def _pack_env8(env: dict) -> bytes | None:
    """``env`` in version 8's compact form, or None when that form cannot hold it exactly."""
    if not isinstance(env, dict):
        return None
    cpu, version, layers = env.get("cpu"), env.get("llama_cpp_python"), env.get("gpu_layers", 0)
    if not (isinstance(cpu, str) and isinstance(version, str) and type(layers) is int
            and layers >= 0 and set(env) <= {"cpu", "llama_cpp_python", "gpu_layers"}):
        return None
    names = cpu.split(",") if cpu else []
    out = bytearray(varint(len(names)))
    for name in names:
        out += (bytes([CPU_FEATURES.index(name)]) if name in CPU_FEATURES
                else bytes([_SPELLED]) + text(name))
    out += text(version) + varint(layers)
    return bytes(out) if _parse_env8(FieldReader(out)) == env else None


def _parse_env8(r: FieldReader) -> dict:
    names = []
    for _ in range(r.varint(len(CPU_FEATURES) + 64, "CPU feature count")):
        index = r.take(1)[0]
        if index == _SPELLED:
            names.append(r.text("CPU feature"))
        elif index < len(CPU_FEATURES):
            names.append(CPU_FEATURES[index])
        else:
            raise CorruptError(f"corrupt stream: unknown CPU feature {index} in the header")
    env = {"cpu": ",".join(names), "llama_cpp_python": r.text("llama.cpp version")}
    layers = r.varint(1 << 16, "GPU layers")
    return {**env, "gpu_layers": layers} if layers else env


def pack_header(h: Header) -> bytes:
    body = _pack_compact(h) if h.version >= COMPACT else _pack_full(h)
    size = varint(len(body)) if h.version >= LEAN else struct.pack("<H", len(body))
    head = bytes([h.version]) + size + body
    return MAGIC + head + struct.pack("<I", zlib.crc32(head))


def empty_header(version: int = VERSION) -> Header:
    """The header of a stream that holds no data (version 8 on): no model or parameter."""
    return Header(CodecConfig(), b"", "", {}, 0, version)


def _pack_full(h: Header) -> bytearray:
    if len(h.model_sha256) != 32:
        raise ValueError("a version 1-5 header holds the model's whole SHA-256")
    body = bytearray([_FLAG_CONTENT_SIZE if h.content_size is not None else 0])
    body += h.model_sha256
    body += b"".join(varint(getattr(h.config, name)) for name in FIELDS[h.version])
    if h.content_size is not None:
        body += varint(h.content_size)
    return body + text(h.model_name) + text(env_text(h.env))


def _pack_compact(h: Header) -> bytearray:
    c, fields, defaults = h.config, FIELDS[h.version], _COMPACT_DEFAULTS[h.version]
    if not c.exact:
        raise ValueError("version 6 streams use exact arithmetic (exact=1)")
    if c.cache_size and "cache_size" not in fields:
        raise ValueError(f"a version {h.version} header has no neural cache (cache_size=0)")
    lean = h.version >= LEAN
    if lean and not h.model_sha256:
        if h.content_size != 0:
            raise ValueError("only an empty stream (content_size=0) names no model")
        return bytearray([_FLAG_EMPTY])
    env8 = _pack_env8(h.env) if lean and h.env else None
    flags = ((_FLAG_CONTENT_SIZE if h.content_size is not None else 0)
             | (_FLAG_NAME if h.model_name else 0)
             | (_FLAG_LLAMA if c.engine == "llama.cpp" else 0)
             | (0 if not h.env else _FLAG_ENV if not lean or env8 else _FLAG_ENV_JSON))
    changed = sum(1 << i for i, name in enumerate(fields) if getattr(c, name) != defaults[name])
    body = bytearray([flags]) + h.model_sha256[:V6_MODEL_BYTES]
    body += varint(changed) if lean else struct.pack("<H", changed)
    body += b"".join(varint(getattr(c, name)) for i, name in enumerate(fields)
                     if changed >> i & 1)
    if h.content_size is not None:
        body += varint(h.content_size)
    if h.model_name:
        body += text(h.model_name)
    if h.env:
        body += env8 if env8 else text(env_text(h.env))
    return body


def starts_stream(buf) -> bool | None:
    """Whether ``buf`` starts with the magic: True, False, or None while it is a prefix of it."""
    head = bytes(buf[:len(MAGIC)])
    if head != MAGIC[:len(head)]:
        return False
    return True if len(head) == len(MAGIC) else None


def not_a_stream(buf) -> FormatError:
    """The error for input that does not start with the magic, saying what it looks like."""
    return FormatError(f"not a nacrith stream (bad magic bytes): {what_it_looks_like(buf)}")


def stream_key(head: bytes) -> bytes:
    """What binds a stream's blocks to it: a hash of its header's bytes."""
    return hashlib.blake2b(head, digest_size=8, person=b"nacrith-key").digest()


def key_of(head: bytes) -> bytes:
    """The stream key of a header's bytes; b"" for versions whose blocks are not bound."""
    return stream_key(head) if head[len(MAGIC)] >= BOUND else b""


def parse_header(buf) -> tuple[Header, int] | None:
    """Parse the header at the start of ``buf``: (header, end offset) or None for 'more'."""
    if starts_stream(buf) is False:
        raise not_a_stream(buf)
    if len(buf) >= len(MAGIC) + 1 and buf[len(MAGIC)] not in READABLE:
        raise FormatError(
            f"unsupported nacrith format version {buf[len(MAGIC)]} (this build reads "
            f"versions {', '.join(map(str, READABLE))}); upgrade nacrith-codec to read it")
    if len(buf) <= len(MAGIC):
        return None
    r = FieldReader(buf, len(MAGIC) + 1)
    try:
        version = buf[len(MAGIC)]
        if version >= LEAN:
            body_len = r.varint(1 << 32, "header length")
        else:
            (body_len,) = struct.unpack("<H", r.take(2))
        if body_len > _MAX_BODY:
            raise CorruptError(f"corrupt stream: header length {body_len} is too large")
        start = r.pos
        r.take(body_len)  # the whole body is here before it is parsed
        r.check_crc(len(MAGIC), "header")
    except FieldReader.More:
        return None
    end = r.pos
    r.pos = start
    try:
        fields = (_parse_compact if version >= COMPACT else _parse_full)(r, version)
    except FieldReader.More:
        raise CorruptError("corrupt stream: header fields overrun the header") from None
    if version >= LEAN and r.pos != end - 4:
        raise CorruptError("corrupt stream: the header's fields do not fill it")
    return Header(*fields, version, key_of(bytes(buf[:end]))), end


def _config(values: dict) -> CodecConfig:
    config = CodecConfig.__new__(CodecConfig)
    for name, value in values.items():
        object.__setattr__(config, name, value)
    return config.validate(CorruptError)


def _parse_full(r: FieldReader, version: int) -> tuple:
    flags = r.take(1)[0]
    if flags & ~_FLAG_CONTENT_SIZE:
        raise FormatError(f"unsupported header flags {flags:#x}; upgrade nacrith-codec")
    sha = r.take(32)
    values = {**CodecConfig().as_dict(), **ABSENT}
    values.update((name, r.varint(1 << 32, name)) for name in FIELDS[version])
    config = _config(values)
    size = r.varint(1 << 62, "content size") if flags & _FLAG_CONTENT_SIZE else None
    return config, sha, r.text("model name"), env_data(r.text("environment")), size


def _parse_compact(r: FieldReader, version: int) -> tuple:
    flags, fields = r.take(1)[0], FIELDS[version]
    if flags & ~_FLAGS[version]:
        raise FormatError(f"unsupported header flags {flags:#x}; upgrade nacrith-codec")
    if flags & _FLAG_ENV and flags & _FLAG_ENV_JSON:
        raise CorruptError("corrupt stream: the header holds its environment twice")
    if flags & _FLAG_EMPTY:
        if flags != _FLAG_EMPTY:
            raise CorruptError(f"corrupt stream: an empty stream's header has flags {flags:#x}")
        return CodecConfig(), b"", "", {}, 0
    sha = r.take(V6_MODEL_BYTES)
    if version >= LEAN:
        changed = r.varint((1 << len(fields)) - 1, "header field mask")
    else:
        (changed,) = struct.unpack("<H", r.take(2))
    if changed >> len(fields):
        raise CorruptError(f"corrupt stream: header field mask {changed:#x} names unknown fields")
    values = {**CodecConfig().as_dict(), **_COMPACT_DEFAULTS[version],
              "engine": "llama.cpp" if flags & _FLAG_LLAMA else "exact", "exact": 1}
    values.update((name, r.varint(1 << 32, name)) for i, name in enumerate(fields)
                  if changed >> i & 1)
    config = _config(values)
    size = r.varint(1 << 62, "content size") if flags & _FLAG_CONTENT_SIZE else None
    name = r.text("model name") if flags & _FLAG_NAME else ""
    env = {}
    if flags & _FLAG_ENV:
        env = _parse_env8(r) if version >= LEAN else env_data(r.text("environment"))
    elif flags & _FLAG_ENV_JSON:
        env = env_data(r.text("environment"))
    return config, sha, name, env, size
