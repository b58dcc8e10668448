"""The exact engine: a model's logits (SmolLM2's, Gemma 3's), identical on every machine.

``ExactModel`` has the interface of ``engines.interface.Model`` that the codec uses
(``n_vocab``, ``bos``, ``pieces``, ``tokenize``, ``kv_bytes_per_token``) and
``ExactModel.context`` makes contexts with ``engines.interface.Context``'s.  The
weights and the vocabulary come from the GGUF file (weights.py), the
arithmetic is reference.py (and compiled.py, the same bits sooner on the CPU), network.py
and context.py say what it computes, the transcendental functions
tables.py; device.py puts it on the CPU (numpy) or a CUDA GPU (CuPy) with the same
results.  Decoding needs no llama.cpp; encoding uses llama.cpp's tokenizer
only (loaded without weights), since tokenization decides what is coded, not
what a decoder can read.
"""

from __future__ import annotations

import threading

from .context import Context
from .device import Device, DeviceError
from .selfcheck import select
from .network import Network

__all__ = ["ExactModel", "Context", "Device", "DeviceError", "Network", "select"]


class ExactModel:
    def __init__(self, path, device: str = "cpu"):
        self.path = str(path)
        self.device = select(device)
        self.network = Network.from_file(path, self.device)
        self.n_vocab, self.bos, self.pieces = (self.network.n_vocab, self.network.bos,
                                               self.network.pieces)
        self.kv_bytes_per_token = self.network.kv_bytes_per_token
        self.n_embd = self.network.shape.embd
        # a step's attention temporaries per row and cached token: float64 scores and
        # weights of every query head, about eight arrays of them at once
        self.score_bytes = 8 * 8 * self.network.shape.heads
        self._vocab = None
        self._lock = threading.Lock()

    def tokenize(self, text: bytes):
        """llama.cpp's tokenization (its vocabulary only, loaded on first use)."""
        with self._lock:
            if self._vocab is None:
                from ..llamacpp import Model
                self._vocab = Model(self.path, vocab_only=True)
        return self._vocab.tokenize(text)

    def context(self, streams, window, slide, sink, threads=None, pending=1,
                hidden=False, own_slots=True) -> Context:
        """A context of B streams (its final hidden states are kept whatever ``hidden``:
        they cost nothing here); ``own_slots``: False for the skip's streams of format
        versions 6 and 7 (context.py)."""
        return Context(self.network, streams, window, slide, sink, threads, pending, own_slots)
