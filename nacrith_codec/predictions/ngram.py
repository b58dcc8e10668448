"""Token N-gram predictor: which symbols followed each recent context, and how often.

One hashed table serves all orders 1..N.  A bucket holds a 16-bit check of
its context (collisions are detected, not silently merged) and up to ``SLOTS``
continuations with counts; a new continuation replaces the least frequent one,
and counts are halved when one passes ``LIMIT`` so that the statistics follow
the text.  The table has ``2**bits`` buckets whatever the input size: memory
is bounded (``2**bits * (4 + 8 * SLOTS)`` bytes) and set by the stream header.

Everything is vectorized over the streams of a step; updates of buckets hit
by more than one stream in the same step are applied in stream order, in
rounds, so encoder and decoder always agree.
"""

from __future__ import annotations

import numpy as np

SLOTS = 4
LIMIT = 60.0


class NGram:
    def __init__(self, order: int, bits: int):
        self.order, self.mask = order, np.uint64((1 << bits) - 1)
        size = 1 << bits
        self.check = np.zeros(size, dtype=np.uint32)  # 0 = empty bucket
        self.token = np.full((size, SLOTS), -1, dtype=np.int32)
        self.count = np.zeros((size, SLOTS), dtype=np.float32)

    def _locate(self, hashes: np.ndarray):
        bucket = (hashes & self.mask).astype(np.int64)
        check = ((hashes >> np.uint64(48)) | np.uint64(1)).astype(np.uint32)
        return bucket, check

    def lookup(self, hashes: np.ndarray):
        """For (S, order) context hashes: continuations (S, order, SLOTS), -1 where none,
        and their counts, 0 where none."""
        bucket, check = self._locate(hashes)
        hit = (self.check[bucket] == check)[..., None]
        token = np.where(hit, self.token[bucket], -1)
        return token, np.where(hit, self.count[bucket], 0.0).astype(np.float64)

    def update(self, hashes: np.ndarray, symbols: np.ndarray):
        """Record that ``symbols[s]`` followed each of the contexts ``hashes[s]``."""
        bucket, check = self._locate(hashes)
        bucket, check = bucket.ravel(), check.ravel()
        symbol = np.repeat(symbols.astype(np.int32), self.order)
        # Round r applies the r-th update of every bucket (in stream order).
        order = np.argsort(bucket, kind="stable")
        sorted_b = bucket[order]
        first = np.r_[True, sorted_b[1:] != sorted_b[:-1]]
        start = np.maximum.accumulate(np.where(first, np.arange(len(order)), 0))
        rank = np.empty(len(order), dtype=np.int64)
        rank[order] = np.arange(len(order)) - start
        for r in range(int(rank.max()) + 1 if len(rank) else 0):
            pick = rank == r
            self._apply(bucket[pick], check[pick], symbol[pick])

    def _apply(self, b, check, symbol):
        fresh = self.check[b] != check
        if fresh.any():
            self.check[b[fresh]] = check[fresh]
            self.token[b[fresh]] = -1
            self.count[b[fresh]] = 0.0
        tokens, counts = self.token[b], self.count[b]
        same = tokens == symbol[:, None]
        seen = same.any(axis=1)
        slot = np.where(seen, same.argmax(axis=1), counts.argmin(axis=1))
        rows = np.arange(len(b))
        counts[rows, slot] = np.where(seen, counts[rows, slot] + 1.0, 1.0)
        tokens[rows, slot] = symbol
        over = counts.max(axis=1) > LIMIT
        counts[over] *= 0.5
        self.token[b], self.count[b] = tokens, counts
