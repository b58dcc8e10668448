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
