"""Match model: the symbol that followed the latest earlier occurrence of the current context.

A table of ``2**bits`` entries maps the hash of the last ``min_len`` symbols
to where they last ended, in any stream of the block.  A candidate found
through the table is verified symbol by symbol (a hash collision never
predicts), its length measured back up to ``MAX_LEN``, and it is followed for
as long as its predictions come true.  A context is entered one step late, once the symbol
after it is known, so a prediction always points at a symbol both encoder and
decoder already have, even in a stream coded in the same step.
"""

from __future__ import annotations

import numpy as np

MAX_LEN = 64  # lengths are measured, and counted, up to this


class MatchModel:
    def __init__(self, history, streams: int, min_len: int, bits: int):
        self.history, self.min_len = history, min_len
        self.mask = np.uint64((1 << bits) - 1)
        self.table = np.full(1 << bits, -1, dtype=np.int64)  # flat index of the next symbol
        self.ptr = np.full(streams, -1, dtype=np.int64)
        self.length = np.zeros(streams, dtype=np.int64)

    def predict(self, live: int) -> tuple[np.ndarray, np.ndarray]:
        """(predicted symbol or -1, match length) of each live stream, for the next step."""
        ptr = self.ptr[:live]
        ok = ptr >= 0
        symbol = np.where(ok, self.history.tokens.ravel()[np.maximum(ptr, 0)], -1)
        return symbol, np.where(ok, self.length[:live], 0)

    def update(self, symbols: np.ndarray, hashes: np.ndarray | None, prev_hashes: np.ndarray | None):
        """After step t's ``symbols`` were appended: follow or drop each match, enter the
        context that ended at t - 1 (``prev_hashes``), look up the one ending at t."""
        live, h = len(symbols), self.history
        width = h.tokens.shape[1]
        ptr, length = self.ptr[:live], self.length[:live]
        follow = (ptr >= 0) & (h.tokens.ravel()[np.maximum(ptr, 0)] == symbols)
        ptr[:] = np.where(follow, ptr + 1, -1)
        length[:] = np.where(follow, np.minimum(length + 1, MAX_LEN), 0)
        # A followed match ends where its source stream has no known symbol yet.
        stream, pos = np.divmod(ptr, width)
        drop = follow & (pos >= h.known()[stream])
        ptr[drop], length[drop] = -1, 0
        t = h.t  # symbols now known per live stream
        if prev_hashes is not None:  # context ending at t - 2 is followed by symbol t - 1
            slot = (prev_hashes & self.mask).astype(np.int64)
            self.table[slot] = h.flat(np.arange(live), t - 1)
        if hashes is None:
            return
        need = np.flatnonzero(ptr < 0)
        if not len(need):
            return
        cand = self.table[(hashes[need] & self.mask).astype(np.int64)]
        found = cand >= 0
        need, cand = need[found], cand[found]
        # Verify and measure: symbols before the candidate against this stream's last ones.
        span = min(MAX_LEN, t)
        back = np.arange(1, span + 1)
        src_stream, src_pos = np.divmod(cand, width)
        src = src_pos[:, None] - back
        valid = src >= 0
        theirs = h.tokens[src_stream[:, None], np.maximum(src, 0)]
        mine = h.tokens[need[:, None], t - back]
        agree = np.cumprod(valid & (theirs == mine), axis=1)
        got = agree.sum(axis=1)
        good = got >= self.min_len
        ptr[need[good]] = cand[good]
        length[need[good]] = got[good]
