"""The checks of what callers pass, in lzma's words: data as a bytes-like object, lengths
and sizes as integers.  One rule each, for every front end (API, file objects, plugins):
a wrong type is a TypeError and a wrong value a ValueError, at once, never a hang or an
error from deep inside."""

from __future__ import annotations

import operator


def byte_view(data) -> memoryview:
    """``data`` (any C-contiguous bytes-like object: bytes, bytearray, memoryview, an
    array) as a flat view of its bytes, as lzma takes it."""
    try:
        view = memoryview(data)
    except TypeError:
        raise TypeError(f"a bytes-like object is required, not {type(data).__name__!r}"
                        + (" (encode text first, or use nacrith_codec.open(..., 'wt'))"
                           if isinstance(data, str) else "")) from None
    if not view.c_contiguous:
        raise BufferError(f"a C-contiguous bytes-like object is required, not a strided "
                          f"{type(data).__name__!r} (copy it first)")
    return view.cast("B")


def integer(value, what: str) -> int:
    """``value`` as an int (anything with ``__index__``), else a TypeError naming ``what``."""
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{what} must be an integer, not {type(value).__name__!r}") from None


def length_limit(max_length) -> int:
    """``decompress``'s ``max_length``: an integer; negative means no limit."""
    return integer(max_length, "max_length")


def content_size(value) -> int | None:
    """A declared original size: None (unknown) or an integer >= 0."""
    if value is None:
        return None
    size = integer(value, "content_size")
    if size < 0:
        raise ValueError(f"content_size must be at least 0 (or None when unknown), not {size}")
    return size
