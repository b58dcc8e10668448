"""Tokens: exact, lossless conversion between bytes and symbols.

A symbol below ``n_vocab`` is a token of the model; ``n_vocab + b`` is the raw
byte ``b`` (an escape).  Text runs (see segments/runs.py) are tokenized by
llama.cpp; raw runs, and any text run whose tokens do not reproduce it
exactly, become single-byte tokens where the vocabulary has them and escapes
where it does not.  ``detokenize(tokenize(x)) == x`` for every byte string,
and the tokenizer checks it before anything is coded.
"""

from __future__ import annotations

import re

import numpy as np

from ..errors import NacrithError
from ..segments.runs import regions, segment


def _utf8_lead_ranges(lead: int) -> tuple[int, int] | None:
    """Code points whose UTF-8 form starts with ``lead`` (None if it never leads)."""
    for low, high, mask, shift, top in ((0xC2, 0xDF, 0x1F, 6, 0x3F), (0xE0, 0xEF, 0x0F, 12, 0xFFF),
                                        (0xF0, 0xF4, 0x07, 18, 0x3FFFF)):
        if low <= lead <= high:
            start = (lead & mask) << shift
            return start, min(start + top, 0x10FFFF)
    return None


class Tokenizer:
    """Exact tokenization for one model's vocabulary."""

    def __init__(self, model):
        self.model = model
        self.n_vocab = n = model.n_vocab
        escapes = [bytes([b]) for b in range(256)]
        self.pieces = list(model.pieces) + escapes
        self.piece_len = np.array([len(p) for p in self.pieces], dtype=np.int64)
        self._byte_symbol = np.arange(n, n + 256, dtype=np.int32)
        for token, piece in reversed(list(enumerate(model.pieces))):
            if len(piece) == 1:
                self._byte_symbol[piece[0]] = token
        missing = [b for b in range(256) if self._byte_symbol[b] >= n]
        self._forbidden = "".join(re.escape(chr(b)) for b in missing if b < 0x80)
        for lead in missing:
            span = _utf8_lead_ranges(lead)
            if span:
                self._forbidden += f"{re.escape(chr(span[0]))}-{re.escape(chr(span[1]))}"
        # The model input for each symbol; an escaped byte has no token, so the
        # model is fed BOS in its place.
        self.llm_input = np.concatenate([np.arange(n, dtype=np.int32),
                                         np.full(256, model.bos, dtype=np.int32)])
        # Tokens the tokenizer never emits (control tokens with empty pieces).
        self.never = np.array([not p for p in model.pieces])

    def _raw(self, run: bytes) -> np.ndarray:
        return self._byte_symbol[np.frombuffer(run, dtype=np.uint8)]

    def segments(self, data: bytes) -> list[tuple[bool, bytes]]:
        """(is_text, run) pieces of ``data``: text runs go to the tokenizer."""
        return segment(data, self._forbidden)

    def regions(self, data: bytes) -> list[tuple[bool, bytes]]:
        """(is_text, region) pieces of a block: text regions go to the model."""
        return regions(data, self._forbidden)

    def tokenize(self, data: bytes, segments=None) -> np.ndarray:
        parts = []
        for is_text, run in self.segments(data) if segments is None else segments:
            symbols = self.model.tokenize(run) if is_text else None
            if symbols is None or self.detokenize(symbols) != run:
                symbols = self._raw(run)
            parts.append(symbols)
        symbols = np.concatenate(parts) if parts else np.zeros(0, np.int32)
        if self.detokenize(symbols) != data:  # the invariant everything rests on
            raise NacrithError("internal error: tokenization is not exact; please report this input")
        return symbols

    def detokenize(self, symbols) -> bytes:
        pieces = self.pieces
        return b"".join([pieces[s] for s in symbols.tolist()])
