"""Segments: splitting bytes into runs the tokenizer can take and runs it cannot.

llama.cpp tokenizes UTF-8 text.  Invalid UTF-8 and the few bytes that have no
token of their own do not survive tokenize -> pieces, so they are cut out as
raw runs before tokenization and coded byte by byte (see tokens.py).
"""

from __future__ import annotations

import re
from typing import Iterator

import numpy as np


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


# Measured on 16 MiB of random bytes (what compressed data looks like): a
# valid-UTF-8 run of 8+ bytes starts every ~280 bytes, of 16+ every ~40 KB, of
# 24+ every ~5.6 MB, and none reached 32.  In the corpus, JPEG tables and zero
# padding are valid UTF-8 runs of 32+ bytes, but not printable.
STRONG_RUN = 8  # a text run this long can start or extend a text region
GAP = 8  # at most this many other bytes between two strong runs of one region
MIN_TEXT = 32  # the shortest text region
MIN_PRINTABLE = 0.9  # the least fraction of printable bytes in a text region

_CONTROL = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f"  # not printable: these end a run here
_printable = np.zeros(256, dtype=bool)
_printable[0x20:0x7F] = _printable[0x80:] = True
_printable[[0x09, 0x0A, 0x0D]] = True


def regions(data: bytes, forbidden: str) -> list[tuple[bool, bytes]]:
    """Split ``data`` into text regions, for the model, and binary regions between them.

    A text region is a chain of text runs (here also ended by control bytes
    other than whitespace) of at least ``STRONG_RUN`` bytes,
    each within ``GAP`` bytes of the next (the bytes between, such as stray
    control bytes in a log, are coded by the model as byte tokens), at least
    ``MIN_TEXT`` bytes long and ``MIN_PRINTABLE`` printable.  Every other byte
    is binary.  Between two text regions lie more than ``GAP`` binary bytes,
    so a block of n bytes has fewer than n / 20 + 2 regions.
    """
    spans: list[list[int]] = []
    pos = 0
    for is_text, run in text_runs(data, forbidden + _CONTROL):
        end = pos + len(run)
        if is_text and len(run) >= STRONG_RUN:
            if spans and pos - spans[-1][1] <= GAP:
                spans[-1][1] = end
            else:
                spans.append([pos, end])
        pos = end
    printable = np.concatenate([[0], np.cumsum(_printable[np.frombuffer(data, np.uint8)])])
    out: list[tuple[bool, bytes]] = []
    last = 0
    for start, end in spans:
        if end - start >= MIN_TEXT and printable[end] - printable[start] >= MIN_PRINTABLE * (end - start):
            if start > last:
                out.append((False, data[last:start]))
            out.append((True, data[start:end]))
            last = end
    if last < len(data):
        out.append((False, data[last:]))
    # A few stray bytes at either end of a block join the text next to them.
    if len(out) > 1 and out[1][0] and len(out[0][1]) <= GAP:
        out[:2] = [(True, out[0][1] + out[1][1])]
    if len(out) > 1 and out[-2][0] and len(out[-1][1]) <= GAP:
        out[-2:] = [(True, out[-2][1] + out[-1][1])]
    return out
