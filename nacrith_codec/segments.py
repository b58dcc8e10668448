"""Segments: splitting bytes into runs the tokenizer can take and runs it cannot.

llama.cpp tokenizes UTF-8 text.  Invalid UTF-8 and the few bytes that have no
token of their own do not survive tokenize -> pieces, so they are cut out as
raw runs before tokenization and coded byte by byte (see tokens.py).
"""

from __future__ import annotations

import re
from typing import Iterator


def text_runs(data: bytes, forbidden: str) -> Iterator[tuple[bool, bytes]]:
    """Yield (is_text, run) covering ``data`` in order.

    A text run is valid UTF-8 holding none of the ``forbidden`` characters (a
    regular-expression character class body); every other byte lands in a raw
    run.  Invalid bytes are found by decoding with
    ``surrogateescape``, which maps each of them to a lone surrogate.
    """
    if not data:
        return
    pattern = re.compile(f"([\udc80-\udcff{forbidden}]+)")
    text = data.decode("utf-8", errors="surrogateescape")
    for i, part in enumerate(pattern.split(text)):
        if part:
            yield i % 2 == 0, part.encode("utf-8", errors="surrogateescape")


def segment(data: bytes, forbidden: str, min_text: int = 8) -> list[tuple[bool, bytes]]:
    """``text_runs`` with text runs shorter than ``min_text`` next to raw bytes made raw.

    In binary data most "text" is a few printable bytes between invalid ones;
    tokenizing each of them costs a llama.cpp call and gains nothing.  Adjacent
    raw runs are joined.  This is the encoder's choice only: any segmentation
    decodes, since the decoder just concatenates the pieces of the symbols.
    """
    runs = list(text_runs(data, forbidden))
    groups: list[tuple[bool, list[bytes]]] = []  # joined once at the end: linear time
    for i, (is_text, run) in enumerate(runs):
        next_to_raw = (i > 0 and not runs[i - 1][0]) or (i + 1 < len(runs) and not runs[i + 1][0])
        if is_text and len(run) < min_text and next_to_raw:
            is_text = False
        if groups and not is_text and not groups[-1][0]:
            groups[-1][1].append(run)
        else:
            groups.append((is_text, [run]))
    return [(is_text, b"".join(parts)) for is_text, parts in groups]
