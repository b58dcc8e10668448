"""Adaptive log-space bias head: one learned offset per vocabulary entry.

Added to the mixed logits, it learns by online gradient descent on the coded
symbols' cross-entropy (gradient ``p - onehot``, summed over the streams of a
step) which tokens this text uses more or less often than the model expects:
names, spelling, markup.  Learning is one vectorized update per step.
"""

from __future__ import annotations

import numpy as np

from . import arith, fused


class BiasHead:
    def __init__(self, n_vocab: int, rate: float, exact: int = 0):
        self.rate, self.exact = rate, exact
        self.bias = np.zeros(n_vocab, dtype=np.float64)
        self._fused = bool(exact) and fused.available()

    def learn(self, probs: np.ndarray, symbols: np.ndarray):
        """probs (S, V) of the rows that coded ``symbols`` (S,), all below V."""
        if self._fused:
            return fused.bias_step(self.bias, probs, symbols, self.rate)
        grad = arith.row_sum(probs) if self.exact else probs.sum(axis=0)
        np.subtract.at(grad, symbols, 1.0)
        self.bias -= self.rate * grad
