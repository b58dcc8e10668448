"""One block: bytes -> tokens -> predictions -> bits, and back.

A block's symbols are split into L <= B contiguous streams, longest first.
Step t feeds every stream still live (the first ``live(t)`` of them) its
previous symbol (BOS at t = 0) in one llama_batch, turns the logits into
probabilities and codes symbol t of each live stream.  ``_run`` is the only
implementation of that schedule: the encoder passes the known symbols through
it, the decoder the symbols it reads back, so both compute the same
probabilities from the same llama_decode calls.
"""

from __future__ import annotations

import time

import numpy as np

from . import container
from .coder import SymbolDecoder, SymbolEncoder
from .errors import CorruptError
from .predict import Predictor


class BlockCoder:
    def __init__(self, engine, config, threads=None, progress=None):
        self.engine, self.config, self.threads = engine, config, threads
        self.tokenizer = tok = engine.tokenizer
        self.predictor = Predictor(tok.n_vocab, config.streams, never=tok.never)
        self._piece_len = np.array([len(p) for p in tok.pieces], dtype=np.int64)
        self.progress = progress
        self.stats = {"tokens": 0, "forward_passes": 0, "seconds": 0.0, "model_bits": 0.0,
                      "coded_bits": 0}

    def split(self, n: int) -> list[int]:
        """Stream lengths for n symbols: as many streams as are worth it, longest first."""
        if n == 0:
            return []
        streams = max(1, min(self.config.streams, n // self.config.min_stream_tokens))
        base, extra = divmod(n, streams)
        return [base + 1] * extra + [base] * (streams - extra)

    def _run(self, counts, grid, coder):
        start = time.perf_counter()
        lengths = np.array(counts)
        inputs = np.full(len(counts), self.engine.model.bos, dtype=np.int32)
        llm_input = self.tokenizer.llm_input
        with self.engine.context(self.config, self.threads) as ctx:
            ctx.reset()
            for t in range(counts[0] if counts else 0):
                live = int(np.count_nonzero(lengths > t))
                probs = self.predictor(ctx.step(inputs[:live]))
                symbols = coder.code(grid[:live, t], probs)
                grid[:live, t] = symbols
                inputs[:live] = llm_input[symbols]
                if self.progress:
                    self.progress(int(self._piece_len[symbols].sum()))
        self.stats["tokens"] += int(lengths.sum())
        self.stats["forward_passes"] += int(lengths.sum())
        self.stats["seconds"] += time.perf_counter() - start

    def encode(self, data: bytes) -> bytes:
        """The record of one block: neural, or stored when that is smaller."""
        symbols = self.tokenizer.tokenize(data)
        counts = self.split(len(symbols))
        grid = np.zeros((len(counts), counts[0] if counts else 0), dtype=np.int32)
        offset = 0
        for i, count in enumerate(counts):
            grid[i, :count] = symbols[offset:offset + count]
            offset += count
        coder = SymbolEncoder(self.tokenizer.n_vocab)
        self._run(counts, grid, coder)
        payload = coder.finish()
        self.stats["model_bits"] += coder.model_bits
        self.stats["coded_bits"] += 8 * len(payload)
        if len(payload) >= len(data):
            return container.pack_stored(data)
        return container.pack_neural(len(data), counts, payload, container.digest(data))

    def decode(self, block: container.Block) -> bytes:
        """Decode a neural block record; its digest is checked by the caller."""
        counts = list(block.counts)
        if counts != sorted(counts, reverse=True):
            raise CorruptError("corrupt stream: stream lengths are not in schedule order")
        grid = np.zeros((len(counts), counts[0] if counts else 0), dtype=np.int32)
        self._run(counts, grid, SymbolDecoder(self.tokenizer.n_vocab, block.payload))
        symbols = np.concatenate([grid[i, :c] for i, c in enumerate(counts)])
        if int(self._piece_len[symbols].sum()) != block.raw_len:  # before joining: bounded memory
            raise CorruptError("corrupt stream: a block decoded to the wrong length")
        return self.tokenizer.detokenize(symbols)
