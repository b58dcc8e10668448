"""The symbols of a block's streams coded so far, and hashes of their recent contexts.

Every online predictor (ngram.py, match.py) reads the streams' histories
through this one object.  All streams of a block advance in lockstep, so
after step t every live stream holds exactly t + 1 symbols; a stream that has
ended simply stops growing.  Memory is one int32 per symbol of the block.
"""

from __future__ import annotations

import numpy as np

_MUL = np.uint64(0x9E3779B97F4A7C15)  # odd constants of a 64-bit multiplicative hash
_MIX = np.uint64(0xBF58476D1CE4E5B9)


class History:
    def __init__(self, counts):
        self.counts = np.asarray(counts, dtype=np.int64)
        width = int(self.counts[0]) if len(self.counts) else 0
        self.tokens = np.zeros((len(self.counts), width + 1), dtype=np.int32)
        self.t = 0  # symbols held by every live stream

    def append(self, symbols: np.ndarray):
        """The symbols of step t for the first len(symbols) streams."""
        self.tokens[:len(symbols), self.t] = symbols
        self.t += 1

    def known(self) -> np.ndarray:
        """How many symbols of each stream are known."""
        return np.minimum(self.counts, self.t)

    def flat(self, stream: np.ndarray, pos: np.ndarray) -> np.ndarray:
        """Index into ``tokens.ravel()`` of a (stream, position)."""
        return stream * self.tokens.shape[1] + pos

    def hashes(self, live: int, order: int) -> np.ndarray:
        """(live, order) 64-bit hashes of the last 1..order symbols of each live stream.

        Column k hashes the last k + 1 symbols together with k, so contexts of
        different lengths never share a hash by construction.  Positions before
        the start of a stream hash as -1 (no symbol).
        """
        t = self.t
        out = np.empty((live, order), dtype=np.uint64)
        h = np.zeros(live, dtype=np.uint64)
        with np.errstate(over="ignore"):
            for k in range(order):
                pos = t - 1 - k
                sym = self.tokens[:live, pos] if pos >= 0 else np.full(live, -1, np.int32)
                h = (h + sym.astype(np.uint64) + np.uint64(k + 1)) * _MUL
                out[:, k] = (h ^ (h >> np.uint64(31))) * _MIX
        return out
