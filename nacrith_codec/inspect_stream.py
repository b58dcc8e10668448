"""Reading a stream's structure without decoding it (for ``nacrith info``)."""

from __future__ import annotations

from . import classical, container
from .errors import TruncatedError
from .model_file import DEFAULT_FILE
from .sequence import check_next


def describe(data) -> dict:
    """Header fields and block statistics of the first stream in ``data``."""
    parsed = container.parse_header(data)
    if parsed is None:
        raise TruncatedError("the stream ends inside its header")
    header, pos = parsed
    blocks, tokens, methods = 0, 0, {}
    while True:
        parsed = container.parse_record(data, pos, header, blocks)
        if parsed is None:
            raise TruncatedError(f"the stream ends inside a block at offset {pos}")
        record, pos = parsed
        if isinstance(record, container.End):
            break
        blocks += 1
        tokens += sum(record.counts)
        for method, size in record.methods().items():
            name = classical.NAMES[method]
            methods[name] = methods.get(name, 0) + size
    return {"format_version": header.version, "model": header.model_name or DEFAULT_FILE,
            "engine": header.config.engine,
            "model_sha256": header.model_sha256.hex(), "config": header.config.as_dict(),
            "environment": container.environment(header.env) or header.env,
            "original_size": record.total_len,
            "compressed_size": pos, "blocks": blocks, "bytes_by_method": methods,
            "tokens": tokens, "bpb": 8 * pos / record.total_len if record.total_len else None,
            "trailing_bytes": len(data) - pos}


def describe_all(data) -> list[dict]:
    """``describe`` of every stream of a file of concatenated streams (``sequence``'s rule:
    truncation and trailing data raise)."""
    view, pos, out = memoryview(data), 0, []
    while not out or pos < len(view):
        if out and not check_next(view[pos:], len(out)):
            raise TruncatedError(f"the input ends inside the header of stream {len(out) + 1}")
        info = describe(view[pos:])
        del info["trailing_bytes"]
        out.append({"offset": pos, **info})
        pos += info["compressed_size"]
    return out
