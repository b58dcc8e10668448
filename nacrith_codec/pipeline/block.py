"""One block: bytes -> segments -> tokens -> predictions -> bits, and back.

The encoder cuts a block into text regions and binary regions
(segments.runs.regions).  Text goes to the language model, binary bytes to the
best classical codec (segments/classical.py), incompressible ones stored raw; the
whole block coded classically is the fallback, and the smaller record wins,
so a block never costs much more than xz or zstd would make of it.

The model's symbols go through the lockstep schedule (schedule.py): the encoder
passes the known symbols through it, the decoder the symbols it reads back, so
both compute the same probabilities from the same model calls.
"""

from __future__ import annotations

import time

import numpy as np

from .. import container
from ..bits import SymbolDecoder, SymbolEncoder
from ..errors import CorruptError
from ..predictions import Predictor
from ..segments import classical
from ..segments.classical import MODEL, RAW
from . import memory, schedule
from .stats import new_stats

_CHECK_EVERY = 64  # steps between the encoder's checks that the model still pays
_INCOMPRESSIBLE_MIN = 256  # binary regions at least this long are tested for being stored raw
_PACK, _RAW = "pack", "raw"  # roles of binary parts: coded by the best codec, or stored


class BlockCoder:
    def __init__(self, engine, config, threads=None, progress=None, shared=None):
        """``shared``: a batch.SharedContext whose lanes this coder's blocks run in (the
        exact engine, with other blocks in the same forward passes); else a context of
        the engine's own."""
        self.engine, self.config, self.threads = engine, config, threads
        self.shared = shared
        self.tokenizer = tok = engine.tokenizer
        self.predictor = Predictor(tok.n_vocab, config.streams, tok.never, config,
                                   engine.model.n_embd if config.cache_size else 0)
        self._piece_len = tok.piece_len
        self.progress = progress
        self.stats = new_stats()

    def prefill_chunk(self) -> int:
        """Tokens of each stream an encoder computes per forward pass: more than one where
        the engine computes a row as one token at a time would, whatever shares its pass
        (the exact engine, without the skip's held-back tokens) and the block has a
        context of its own; the memory limit bounds it (memory.prefill_chunk)."""
        c, model = self.config, self.engine.model
        if c.engine != "exact" or c.skips or self.shared is not None:
            return 1
        return memory.prefill_chunk(c, model.n_vocab, model.kv_bytes_per_token,
                                    memory.resolve(), model.score_bytes, model.n_embd)

    def _run(self, counts, grid, coder, give_up=None, known=False):
        """The schedule over ``grid``; ``give_up(bytes_done)`` may stop an encoder early;
        ``known``: ``grid`` holds the symbols to code (an encoder), so the engine may
        compute several steps of each stream in one pass."""
        start = time.perf_counter()
        times: dict = {}

        def code(t, live, probs):
            symbols = coder.code(grid[:live, t], probs)
            grid[:live, t] = symbols
            step_bytes = int(self._piece_len[symbols].sum())
            self._done += step_bytes
            if self.progress:
                self.progress(step_bytes)
            if (give_up is not None and t % _CHECK_EVERY == _CHECK_EVERY - 1
                    and give_up(self._done)):
                return None
            return symbols

        pending = self.config.max_pending
        chunk = self.prefill_chunk() if known else 1
        bos, llm_input = self.engine.model.bos, self.tokenizer.llm_input
        if chunk > 1:
            with self.engine.context(self.config, self.threads, chunk) as ctx:
                if not schedule.run_prefilled(ctx, counts, grid.copy(), llm_input, bos, code,
                                              self.predictor, chunk, times):
                    return False
        else:
            with (self.shared.lane() if self.shared is not None
                  else self.engine.context(self.config, self.threads, pending)) as ctx:
                if not schedule.run(ctx, counts, llm_input, bos, code, self.predictor,
                                    pending, times):
                    return False
        self.stats["tokens"] += int(sum(counts))
        self.stats["seconds"] += time.perf_counter() - start
        for key, value in times.items():  # model_steps: rows the model evaluated
            self.stats[key] += value
        return True

    # -- encoding --------------------------------------------------------------

    def encode(self, data: bytes) -> bytes:
        """The record of one block: the smallest of the codings tried.

        Only the encoder chooses, so the rules may change without a new format.
        Classical codings are tried first (at MB/s); the model then runs on the
        text regions with a budget of bits, the size at which it could no
        longer win, and stops as soon as it is spent.
        """
        self._done = 0  # input bytes the model has covered (progress, give_up)
        self._coded = {}  # group of bytes -> its best classical coding, for this block
        digest = container.digest(data)
        regions = self.tokenizer.regions(data)
        roles = [_RAW if not is_text and _incompressible(r) else _PACK for is_text, r in regions]
        best = self._record(data, digest, list(zip(roles, (r for _, r in regions))))
        if len(regions) > 1:  # otherwise that was the whole-block coding
            best = min(best, self._record(data, digest, [(_PACK, data)]), key=_size)
        if any(is_text for is_text, _ in regions):
            choices = [[(MODEL if is_text else role, r) for (is_text, r), role in zip(regions, roles)]]
            if _RAW in roles:  # the probe may call raw what a strong codec still shrinks
                choices.append([(MODEL if is_text else _PACK, r) for is_text, r in regions])
            best = min(best, self._model_record(data, digest, choices, _size(best)) or best,
                       key=_size)
        self._coded = {}
        if self.progress:
            self.progress(len(data) - self._done)  # what the model did not cover
        record, segments = best
        self._count(segments)
        return record

    def _count(self, segments):
        for method, length in segments:
            name = classical.NAMES[method]
            self.stats["segments"][name] = self.stats["segments"].get(name, 0) + length

    def _record(self, data, digest, parts, text=((), b"")) -> tuple[bytes, list]:
        """(record, segments) for parts [(role, bytes)]: the _PACK parts coded together by
        their best codec, _RAW parts stored, MODEL parts by ``text`` = (counts, payload)."""
        group = b"".join(b for role, b in parts if role == _PACK)
        if group not in self._coded:
            self._coded[group] = classical.best(group) if group else (RAW, b"")
        method, payload = self._coded[group]
        coded = {method: payload} if method != RAW else {}
        methods = [{_PACK: method, _RAW: RAW}.get(role, MODEL) for role, _ in parts]
        raw = b"".join(b for m, (_, b) in zip(methods, parts) if m == RAW)
        if raw:
            coded[RAW] = raw
        segments: list[tuple[int, int]] = []
        for m, (_, b) in zip(methods, parts):
            if segments and segments[-1][0] == m:
                segments[-1] = (m, segments[-1][1] + len(b))
            else:
                segments.append((m, len(b)))
        counts, model_payload = text
        return container.pack_segmented(len(data), segments, digest, coded, counts,
                                        model_payload), segments

    def _model_record(self, data, digest, choices, to_beat: int):
        """MODEL parts through the model, the others as in the cheaper of ``choices`` (lists
        of parts differing in the roles of binary parts); None if that cannot beat
        ``to_beat`` bytes."""
        texts = [r for role, r in choices[0] if role == MODEL]
        text = b"".join(texts)
        symbols = self.tokenizer.tokenize(text, [s for r in texts for s in self.tokenizer.segments(r)])
        counts = schedule.split(len(symbols), self.config)
        sizes = [_size(self._record(data, digest, p, (counts, b""))) for p in choices]
        parts = choices[sizes.index(min(sizes))]
        budget = 8 * (to_beat - min(sizes))
        grid = schedule.to_grid(symbols, counts)
        coder = SymbolEncoder(self.tokenizer.n_vocab)
        checks: list[tuple[int, float]] = []

        def give_up(done):
            checks.append((done, coder.bits()))
            return hopeless(checks, len(text), budget)
        if budget <= 0 or not self._run(counts, grid, coder, give_up, known=True):
            return None
        payload = coder.finish()
        if 8 * len(payload) >= budget or len(symbols) > container.max_tokens(len(payload)):
            return None  # the classical coding is as small, or the format's bound forbids it
        self.stats["model_bits"] += coder.model_bits
        self.stats["coded_bits"] += 8 * len(payload)
        return self._record(data, digest, parts, (counts, payload))

    # -- decoding --------------------------------------------------------------

    def decode(self, block: container.Block) -> bytes:
        """Decode a block record; its digest is checked by the caller."""
        self._done = 0
        if block.kind == container.KIND_STORED:
            data = block.payload
        elif block.kind == container.KIND_MODEL:
            data = self._model_decode(block.counts, block.payload, block.raw_len)
        else:
            sizes = block.methods()
            parts = {m: memoryview(self._model_decode(block.counts, block.payload, n) if m == MODEL
                                   else classical.decompress(m, block.coded[m], n))
                     for m, n in sizes.items()}
            offsets = dict.fromkeys(parts, 0)
            out = bytearray()
            for m, length in block.segments:
                out += parts[m][offsets[m]:offsets[m] + length]
                offsets[m] += length
            data = bytes(out)
        if self.progress:
            self.progress(block.raw_len - self._done)
        self._count(block.methods().items())
        return data

    def _model_decode(self, counts, payload: bytes, size: int) -> bytes:
        counts = list(counts)
        if counts != sorted(counts, reverse=True):
            raise CorruptError("corrupt stream: stream lengths are not in schedule order")
        grid = np.zeros((len(counts), counts[0] if counts else 0), dtype=np.int32)
        decoder = SymbolDecoder(self.tokenizer.n_vocab, payload)
        self._run(counts, grid, decoder)
        decoder.finish()
        symbols = schedule.from_grid(grid, counts)
        if int(self._piece_len[symbols].sum()) != size:  # before joining: bounded memory
            raise CorruptError("corrupt stream: a block decoded to the wrong length")
        return self.tokenizer.detokenize(symbols)


def hopeless(checks, total: int, budget: float) -> bool:
    """Whether the model cannot beat ``budget`` bits on ``total`` bytes, judged from
    ``checks``, the (bytes coded, bits spent) of the encoder's checks so far: it has
    spent the budget, or, with at least a quarter coded, would spend it if the rest
    cost what the latest half of its bytes did.  A model starts cold on unusual text
    (its first steps have no context, the ensemble has learned nothing) and gets
    cheaper as it goes: only the rate it has reached counts, not its average."""
    done, bits = checks[-1]
    if bits >= budget:
        return True
    if 4 * done < total:
        return False
    since, spent = next((d, b) for d, b in checks if 2 * d >= done)
    rate = (bits - spent) / (done - since) if done > since else bits / max(done, 1)
    return bits + rate * (total - done) >= budget


def _size(candidate) -> int:
    return len(candidate[0])


def _incompressible(region: bytes) -> bool:
    """Whether a binary region is better stored raw: zstd's fast level finds nothing in it."""
    return (len(region) >= _INCOMPRESSIBLE_MIN
            and len(classical.compress_fast(region)) >= len(region))
