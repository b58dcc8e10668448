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

_CHECK_EVERY = 64  # steps between the encoder's checks that neural coding still pays


class BlockCoder:
    def __init__(self, engine, config, threads=None, progress=None):
        self.engine, self.config, self.threads = engine, config, threads
        self.tokenizer = tok = engine.tokenizer
        self.predictor = Predictor(tok.n_vocab, config.streams, never=tok.never)
        self._piece_len = np.array([len(p) for p in tok.pieces], dtype=np.int64)
        self.progress = progress
        self.stats = {"tokens": 0, "seconds": 0.0, "model_bits": 0.0,
                      "coded_bits": 0}

    def split(self, n: int) -> list[int]:
        """Stream lengths for n symbols: as many streams as are worth it, longest first."""
        if n == 0:
            return []
        streams = max(1, min(self.config.streams, n // self.config.min_stream_tokens))
        base, extra = divmod(n, streams)
        return [base + 1] * extra + [base] * (streams - extra)

    def _run(self, counts, grid, coder, give_up=None):
        """The lockstep schedule; ``give_up(bytes_done)`` may stop an encoder early."""
        start = time.perf_counter()
        self._done = 0  # input bytes covered so far (progress, give_up, _stored)
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
                step_bytes = int(self._piece_len[symbols].sum())
                self._done += step_bytes
                if self.progress:
                    self.progress(step_bytes)
                if (give_up is not None and t % _CHECK_EVERY == _CHECK_EVERY - 1
                        and give_up(self._done)):
                    return False
        self.stats["tokens"] += int(lengths.sum())
        self.stats["seconds"] += time.perf_counter() - start
        return True

    def encode(self, data: bytes) -> bytes:
        """The record of one block: neural, or stored when that is smaller.

        Only the encoder decides this, so the rules may change without a new
        format: a block whose bytes are mostly outside text runs (invalid
        UTF-8, bytes the vocabulary lacks, see segments.py) is stored without
        running the model, and neural coding stops as soon as it has spent
        more bits than the raw bytes it has covered.
        """
        self._done = 0
        segments = self.tokenizer.segments(data)
        if 2 * sum(len(run) for is_text, run in segments if not is_text) > len(data):
            return self._stored(data)
        symbols = self.tokenizer.tokenize(data, segments)
        counts = self.split(len(symbols))
        grid = np.zeros((len(counts), counts[0] if counts else 0), dtype=np.int32)
        offset = 0
        for i, count in enumerate(counts):
            grid[i, :count] = symbols[offset:offset + count]
            offset += count
        coder = SymbolEncoder(self.tokenizer.n_vocab)
        if not self._run(counts, grid, coder, give_up=lambda done: coder.bits() >= 8 * done):
            return self._stored(data)
        payload = coder.finish()
        if len(payload) >= len(data):
            return self._stored(data)
        self.stats["model_bits"] += coder.model_bits
        self.stats["coded_bits"] += 8 * len(payload)
        return container.pack_neural(len(data), counts, payload, container.digest(data))

    def _stored(self, data: bytes) -> bytes:
        if self.progress:
            self.progress(len(data) - self._done)  # what the model did not cover
        return container.pack_stored(data)

    def decode(self, block: container.Block) -> bytes:
        """Decode a block record; a neural block's digest is checked by the caller."""
        if block.kind == container.KIND_STORED:
            if self.progress:
                self.progress(block.raw_len)
            return block.payload
        counts = list(block.counts)
        if counts != sorted(counts, reverse=True):
            raise CorruptError("corrupt stream: stream lengths are not in schedule order")
        grid = np.zeros((len(counts), counts[0] if counts else 0), dtype=np.int32)
        self._run(counts, grid, SymbolDecoder(self.tokenizer.n_vocab, block.payload))
        symbols = np.concatenate([grid[i, :c] for i, c in enumerate(counts)])
        if int(self._piece_len[symbols].sum()) != block.raw_len:  # before joining: bounded memory
            raise CorruptError("corrupt stream: a block decoded to the wrong length")
        return self.tokenizer.detokenize(symbols)
