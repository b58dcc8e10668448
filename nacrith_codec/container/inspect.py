"""Reading a stream's structure without decoding it (for ``nacrith info``)."""

from __future__ import annotations

from ..engines.model_file import named_by_sha256, recorded_name
from ..errors import TruncatedError
from ..pipeline.stats import bits_per_byte
from ..presets import level_of
from ..segments import classical
from .header import parse_header
from .records import End, parse_record
from .sequence import check_next


def stream_info(data) -> dict:
    """Header fields and block statistics of the first stream in ``data``."""
    parsed = parse_header(data)
    if parsed is None:
        raise TruncatedError("the stream ends inside its header")
    header, pos = parsed
    blocks, tokens, methods = 0, 0, {}
    while True:
        parsed = parse_record(data, pos, header, blocks)
        if parsed is None:
            raise TruncatedError(f"the stream ends inside a block at offset {pos}")
        record, pos = parsed
        if isinstance(record, End):
            break
        blocks += 1
        tokens += sum(record.counts)
        for method, size in record.methods().items():
            name = classical.NAMES[method]
            methods[name] = methods.get(name, 0) + size
    model = (recorded_name(header.model_name, header.model_sha256.hex())
             if header.model_sha256 else "none (an empty stream needs none)")
    return {"format_version": header.version, "model": model,
            "engine": header.config.engine,
            "model_sha256": header.model_sha256.hex(), "config": header.config.as_dict(),
            "environment": header.env,
            "original_size": record.total_len,
            "compressed_size": pos, "blocks": blocks, "bytes_by_method": methods,
            "tokens": tokens, "bpb": bits_per_byte(record.total_len, pos),
            "level": _level(header) if header.model_sha256 else None,
            "trailing_bytes": len(data) - pos}


def _level(header):
    """The level (presets.py) whose model and settings the stream has, or None."""
    named = named_by_sha256(header.model_sha256.hex())
    return level_of(header.config, named.name if named else None)


def streams_info(data) -> list[dict]:
    """``stream_info`` of every stream of a file of concatenated streams (``sequence``'s rule:
    truncation and trailing data raise)."""
    view, pos, out = memoryview(data), 0, []
    while not out or pos < len(view):
        if out and not check_next(view[pos:], len(out)):
            raise TruncatedError(f"the input ends inside the header of stream {len(out) + 1}")
        info = stream_info(view[pos:])
        del info["trailing_bytes"]
        out.append({"offset": pos, **info})
        pos += info["compressed_size"]
    return out
