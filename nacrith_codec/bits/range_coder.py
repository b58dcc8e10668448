"""Bits: range coding of symbols with constriction's 24-bit integer models.

The quantization of float probabilities into an exactly invertible integer
model (frequencies summing to 2**24, every symbol at least 1) is done by
constriction's ``Categorical(perfect=False)`` family, a deterministic function
of the float64 probabilities; the range coder sees only those frequencies.
All streams of a step are coded in one call, in stream order, followed by the
raw bytes of the streams that escaped (uniform over 256 values).

The decoder's work is bounded by its payload, whatever a block claims: once
every payload word has been read, the coder's state holds at most 64 bits
more.  A decoder that has taken ``RUN_OUT_BITS`` since its payload ran out
stops with a CorruptError, and one that ends its symbols with words left over
is corrupt too.  The information is counted from below and exactly, in
integer ticks of 2**-24 bits, so every machine stops at the same symbol: a
symbol of probability q (plus a margin for the quantization) counts the
exponent of q in whole bits (-log2 q is above it), and at least n_vocab ticks
(no frequency exceeds 2**24 minus one for each other symbol, so the likeliest
symbol takes -log2(1 - n_vocab / 2**24) > n_vocab / 2**24 bits).  No
transcendental function decides where a stream is corrupt.
"""

from __future__ import annotations

import constriction
import numpy as np

from ..errors import CorruptError

_FAMILY = constriction.stream.model.Categorical(perfect=False)
PRECISION = 24  # bits of the integer models' frequencies
RUN_OUT_BITS = 128  # information decoded past the payload's end at most (64 honestly)
_TICKS = 1 << PRECISION  # per bit, in the count past the payload's end
_MARGIN = 2.0 ** (2 - PRECISION)  # what quantization can add to a probability, and more
_FLOOR = 2.0 ** -PRECISION  # a symbol's smallest probability in the integer model
_BYTE = constriction.stream.model.Uniform(256)
RangeEncoder = constriction.stream.queue.RangeEncoder
RangeDecoder = constriction.stream.queue.RangeDecoder


class SymbolEncoder:
    def __init__(self, n_vocab: int):
        self.n_vocab = n_vocab
        self._coder = RangeEncoder()
        self.model_bits = 0.0  # cross-entropy of the coded symbols under the model

    def code(self, symbols: np.ndarray, probs: np.ndarray) -> np.ndarray:
        """Encode one step's symbols (values >= n_vocab are escaped bytes)."""
        escaped = symbols >= self.n_vocab
        index = np.where(escaped, self.n_vocab, symbols).astype(np.int32)
        self._coder.encode(index, _FAMILY, probs)
        p = probs[np.arange(len(index)), index].astype(np.float64)  # (statistics only)
        self.model_bits -= float(np.log2(np.maximum(p, _FLOOR)).sum())
        if escaped.any():
            self._coder.encode((symbols[escaped] - self.n_vocab).astype(np.int32), _BYTE)
            self.model_bits += 8.0 * int(escaped.sum())
        return symbols

    def bits(self) -> int:
        """Bits written so far."""
        return self._coder.num_bits()

    def finish(self) -> bytes:
        return self._coder.get_compressed().astype("<u4").tobytes()


class SymbolDecoder:
    def __init__(self, n_vocab: int, payload: bytes):
        if len(payload) % 4:
            raise CorruptError("corrupt stream: payload is not a whole number of coder words")
        self.n_vocab = n_vocab
        self._coder = RangeDecoder(np.frombuffer(payload, dtype="<u4").astype(np.uint32))
        self._ran_out = False  # every payload word was read before this step
        self._past_end = 0  # ticks of information decoded since then, from below

    def _decode(self, model, arg) -> np.ndarray:
        try:
            return self._coder.decode(model, arg).astype(np.int32)
        except Exception as exc:  # constriction reports invalid bit strings as ValueError etc.
            raise CorruptError(f"corrupt stream: the range decoder failed ({exc})") from exc

    def code(self, symbols_unused, probs: np.ndarray) -> np.ndarray:
        """Decode one step's symbols (the first argument mirrors the encoder)."""
        symbols = self._decode(_FAMILY, probs)
        escaped = symbols == self.n_vocab
        if self._ran_out:
            self._count_past_end(probs[np.arange(len(symbols)), symbols], int(escaped.sum()))
        if escaped.any():
            symbols[escaped] += self._decode(_BYTE, int(escaped.sum()))
        self._ran_out = self._ran_out or self._coder.maybe_exhausted()
        return symbols

    def _count_past_end(self, p: np.ndarray, escapes: int):
        _, exponent = np.frexp(np.minimum(1.0, p.astype(np.float64) + _MARGIN))
        ticks = np.maximum(-exponent.astype(np.int64) * _TICKS, self.n_vocab)
        self._past_end += int(ticks.sum()) + 8 * _TICKS * escapes
        if self._past_end > RUN_OUT_BITS * _TICKS:
            raise CorruptError("corrupt stream: a block claims more tokens than its payload "
                               "holds (the range decoder ran past its end)")

    def finish(self):
        """Every symbol decoded: the payload must be used up."""
        if not self._coder.maybe_exhausted():
            raise CorruptError("corrupt stream: a block's payload is longer than its tokens")
