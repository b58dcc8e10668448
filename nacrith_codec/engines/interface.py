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
    kv_bytes_per_token: int  # cache per token of context (memory.py's bound)

    def tokenize(self, text: bytes) -> np.ndarray:
        """The model's tokens of UTF-8 text (no BOS; checked by tokens/ to be exact)."""


class Context(Protocol):
    """B token streams in lockstep, each with a sliding window (llamacpp.StreamTokens
    holds the per-stream queue both engines share)."""

    pending: np.ndarray  # tokens waiting per stream

    def reset(self) -> None:
        """Empty every stream's cache and queue."""

    def push(self, tokens: np.ndarray) -> None:
        """Queue tokens[i] for stream i, for the first len(tokens) streams."""

    def step(self, rows) -> np.ndarray:
        """Feed the queued tokens of streams ``rows`` (ascending) in one batch; the logits
        after the last token of each, shape (len(rows), n_vocab)."""

    def close(self) -> None:
        """Free what the context holds now."""
