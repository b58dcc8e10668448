"""Classical coding of the bytes the model should not see.

A method id names a codec *and* every setting that changes its output, so a
stream records one byte per segment and nothing else; changing a setting
means a new id.  Payloads are bare (no xz or zstd container of their own: the
nacrith record around them carries lengths and checksums), and the decoder
is told the exact output length, so a hostile payload can make it produce
neither more bytes than that nor allocate a larger dictionary.

    RAW   the bytes themselves
    LZMA  LZMA2 (xz's coder), preset 9e, dictionary = the segment size rounded
          up to a power of two (4 KiB .. 16 MiB)
    ZSTD  Zstandard level 19, one frame without checksum
    PPMD  PPMd variant H (7-Zip's), order 6, 16 MiB of model memory
"""

from __future__ import annotations

import lzma
from concurrent.futures import ThreadPoolExecutor

import pyppmd

try:  # Python 3.14+
    from compression import zstd
except ImportError:  # pragma: no cover - depends on the Python version
    from backports import zstd

from ..errors import CorruptError

MODEL, RAW, LZMA, ZSTD, PPMD = range(5)  # MODEL: the language model (pipeline/block.py)
NAMES = {MODEL: "model", RAW: "raw", LZMA: "lzma", ZSTD: "zstd", PPMD: "ppmd"}
CODECS = (LZMA, ZSTD, PPMD)  # the methods that compress

_PPMD_ORDER, _PPMD_MEMORY = 6, 16 << 20
_ZSTD_LIMITS = {zstd.DecompressionParameter.window_log_max: 24}  # 16 MiB, the largest block


def _lzma_filters(size: int, preset: int | None = None) -> list[dict]:
    dict_size = max(4096, 1 << max(0, size - 1).bit_length())
    lzma2 = {"id": lzma.FILTER_LZMA2, "dict_size": dict_size}
    if preset is not None:
        lzma2 = {**lzma2, "preset": preset}
    return [lzma2]


def compress(method: int, data: bytes) -> bytes:
    if method == RAW:
        return bytes(data)
    if method == LZMA:
        return lzma.compress(data, format=lzma.FORMAT_RAW,
                             filters=_lzma_filters(len(data), 9 | lzma.PRESET_EXTREME))
    if method == ZSTD:
        return zstd.compress(data, level=19)
    if method == PPMD:
        encoder = pyppmd.Ppmd7Encoder(_PPMD_ORDER, _PPMD_MEMORY)
        return encoder.encode(data) + encoder.flush(endmark=False)
    raise ValueError(f"unknown classical method {method}")


def decompress(method: int, payload: bytes, size: int) -> bytes:
    """The ``size`` bytes coded in ``payload``; CorruptError if it holds anything else."""
    try:
        if method == RAW:
            out, rest = payload, b""
        elif method == LZMA:
            d = lzma.LZMADecompressor(lzma.FORMAT_RAW, filters=_lzma_filters(size))
            out = d.decompress(payload, max_length=size)
            rest = b"" if d.eof and not d.unused_data else b"?"
        elif method == ZSTD:
            d = zstd.ZstdDecompressor(options=_ZSTD_LIMITS)  # a frame may not ask for more
            out = d.decompress(payload, max_length=size)
            rest = b"" if d.eof and not d.unused_data else b"?"
        elif method == PPMD:
            # PPMd has no end marker here: the length ends it, and the digest
            # of the block (checked by the caller) catches a wrong payload.
            out, rest = pyppmd.Ppmd7Decoder(_PPMD_ORDER, _PPMD_MEMORY).decode(payload, size), b""
        else:
            raise CorruptError(f"corrupt stream: unknown coding method {method}")
    except (lzma.LZMAError, zstd.ZstdError, EOFError, ValueError, RuntimeError,
            SystemError) as exc:  # pyppmd reports some damaged input as SystemError
        raise CorruptError(f"corrupt stream: the {NAMES[method]} payload does not decode "
                           f"({exc})") from exc
    if len(out) != size or rest:
        raise CorruptError(f"corrupt stream: the {NAMES[method]} payload does not hold the "
                           f"{size} bytes its segments need")
    return out


def compress_fast(data: bytes) -> bytes:
    """A quick probe of compressibility (zstd level 3, hundreds of MB/s)."""
    return zstd.compress(data, level=3)


def best(data: bytes, methods=CODECS) -> tuple[int, bytes]:
    """(method, payload) of the smallest coding of ``data``, RAW unless one is smaller.

    The codecs run in threads: lzma and zstd release the GIL while they work.
    """
    with ThreadPoolExecutor(len(methods)) as pool:
        payloads = list(pool.map(lambda method: compress(method, data), methods))
    choice = (RAW, bytes(data))
    for method, payload in zip(methods, payloads):
        if len(payload) < len(choice[1]):
            choice = (method, payload)
    return choice
