"""Predictions: next-symbol probabilities for every live stream of a step.

The symbol alphabet is the model's vocabulary plus one ESCAPE symbol (index
``n_vocab``) that announces a raw byte the vocabulary cannot represent.  The
escape gets a fixed probability, part of the format version, so text without
such bytes pays about 1e-6 bit per token for the possibility.

One vectorized softmax per step covers all B streams; the encoder and the
decoder call exactly this function on exactly the same logits, which is what
makes their integer models identical.
"""

from __future__ import annotations

import numpy as np

ESCAPE_PROBABILITY = 2.0 ** -20


class Predictor:
    """Turns a step's logits (L, V) into symbol probabilities (L, V + 1)."""

    def __init__(self, n_vocab: int, max_rows: int, never=None):
        self.n_vocab = n_vocab
        # Tokens the tokenizer never emits get probability 0 (the coder's
        # integer model still gives them its minimum frequency).
        self._never = np.flatnonzero(never) if never is not None else None
        self._buf = np.empty((max_rows, n_vocab + 1), dtype=np.float64)

    def __call__(self, logits: np.ndarray) -> np.ndarray:
        rows, v = logits.shape
        out = self._buf[:rows]
        p = out[:, :v]
        np.subtract(logits, logits.max(axis=1, keepdims=True), out=p)
        np.exp(p, out=p)
        if self._never is not None:
            p[:, self._never] = 0.0
        p *= (1.0 - ESCAPE_PROBABILITY) / p.sum(axis=1, keepdims=True)
        out[:, v] = ESCAPE_PROBABILITY
        return out
