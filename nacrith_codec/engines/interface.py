"""The one small interface every engine implements (llamacpp.py, exact/).

The codec sees an engine only through these two protocols; a new engine (another
model architecture, a GPU) implements them and nothing else changes.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np


class Model(Protocol):
    """A loaded model: its vocabulary and the size of its cache."""

    n_vocab: int  # tokens of the vocabulary
    bos: int  # the token each stream starts from
    pieces: list  # the bytes of every token (special tokens: b"")
    n_embd: int  # values of a hidden state
    kv_bytes_per_token: int  # cache per token of context (pipeline/memory.py's bound)
    score_bytes: int  # attention temporaries per row of a step and token of its window

    def tokenize(self, text: bytes) -> np.ndarray:
        """The model's tokens of UTF-8 text (no BOS; checked by tokens/ to be exact)."""


class Context(Protocol):
    """B token streams in lockstep, each with a sliding window (StreamTokens below holds
    the per-stream queue both engines share)."""

    pending: np.ndarray  # tokens waiting per stream
    hidden: np.ndarray | None  # the last step's final hidden states (rows, d), if kept

    def reset(self, streams=None) -> None:
        """Empty every stream's cache and queue (or those of ``streams``, indices: the
        exact engine, whose rows are independent, pipeline/batch.py)."""

    def push(self, tokens: np.ndarray) -> None:
        """Queue tokens[i] for stream i, for the first len(tokens) streams."""

    def step(self, rows) -> np.ndarray:
        """Feed the queued tokens of streams ``rows`` (ascending) in one batch; the logits
        after the last token of each, shape (len(rows), n_vocab)."""

    def close(self) -> None:
        """Free what the context holds now."""


class StreamTokens:
    """What every engine's context keeps per stream: the tokens waiting to be fed
    (``push``), how many wait, and how many are cached; and the last step's final hidden
    states (the output layer's input, after the last norm) of its rows, where the
    context keeps them (the neural cache, predictions/cache.py, reads them)."""

    hidden = None

    def __init__(self, streams: int, pending: int):
        self.waiting = np.zeros((streams, pending), dtype=np.int32)
        self.pending = np.zeros(streams, dtype=np.int64)
        self.cached = np.zeros(streams, dtype=np.int64)

    def reset(self, streams=None):
        """Empty every stream's cache and queue, or those of ``streams`` (indices)."""
        which = slice(None) if streams is None else np.asarray(list(streams), dtype=np.int64)
        self.cached[which] = 0
        self.pending[which] = 0

    def push(self, tokens: np.ndarray):
        """Append tokens[i] to the waiting tokens of stream i, for the first len(tokens)."""
        live = len(tokens)
        self.waiting[np.arange(live), self.pending[:live]] = tokens
        self.pending[:live] += 1
