"""The lockstep schedule: the one order in which a block's streams meet the model.

A block's symbols are split into L <= B contiguous streams, longest first
(``split``).  Step t feeds every stream still live (the first ``live(t)`` of them)
its previous symbol (BOS at t = 0) in one batch, turns the logits into
probabilities and codes symbol t of each live stream.  ``run`` is the only
implementation of that schedule: the encoder passes the known symbols through it,
the decoder the symbols it reads back, and the measuring tools (``nacrith bench
--raw`` and ``--ablation``) the file's own, so all compute the same predictions
from the same model calls.
"""

from __future__ import annotations

import time

import numpy as np


def split(n: int, config) -> list[int]:
    """Stream lengths for n symbols: as many streams as are worth it, longest first."""
    if n == 0:
        return []
    streams = max(1, min(config.streams, n // config.min_stream_tokens))
    base, extra = divmod(n, streams)
    return [base + 1] * extra + [base] * (streams - extra)


def to_grid(symbols: np.ndarray, counts: list[int]) -> np.ndarray:
    """The symbols laid out as (streams, steps): stream i holds the i-th run of counts[i]."""
    grid = np.zeros((len(counts), counts[0] if counts else 0), dtype=np.int32)
    offset = 0
    for i, count in enumerate(counts):
        grid[i, :count] = symbols[offset:offset + count]
        offset += count
    return grid


def from_grid(grid: np.ndarray, counts) -> np.ndarray:
    """The symbols of a grid in stream order (``to_grid``'s inverse)."""
    return np.concatenate([grid[i, :c] for i, c in enumerate(counts)] or [grid.ravel()])


def run(ctx, counts, llm_input: np.ndarray, bos: int, code, predictor=None,
        max_pending: int = 1, times: dict | None = None) -> bool:
    """Drive the context ``ctx`` through the schedule of streams of ``counts`` symbols.

    At each step the predictor (if any) picks the live streams that skip the model,
    the context computes the logits of the others, and ``code(t, live, probs)`` (probs:
    the predictor's probabilities, or without one the logits) returns step t's symbols,
    which the model and the predictor then learn.  ``code`` returning None stops the
    run early (False).  ``times`` accumulates model, predictor and coder seconds and the
    rows the model evaluated.
    """
    lengths = np.asarray(counts)
    clock, spent = time.perf_counter, [0.0, 0.0, 0.0, 0]
    ctx.reset()
    ctx.push(np.full(len(counts), bos, dtype=np.int32))
    if predictor is not None:
        predictor.start(counts)
    for t in range(counts[0] if counts else 0):
        t0 = clock()
        live = int(np.count_nonzero(lengths > t))
        skip = (predictor.skips(live, ctx.pending[:live] < max_pending)
                if predictor is not None else np.zeros(live, dtype=bool))
        rows = np.flatnonzero(~skip)
        logits = ctx.step(rows) if len(rows) else None
        t1 = clock()
        probs = predictor.mix(logits, skip, ctx.hidden) if predictor is not None else logits
        t2 = clock()
        symbols = code(t, live, probs)
        t3 = clock()
        if symbols is None:
            return False
        ctx.push(llm_input[symbols])
        if predictor is not None:
            predictor.update(symbols, skip)
        spent[0] += t1 - t0
        spent[1] += t2 - t1 + clock() - t3
        spent[2] += t3 - t2
        spent[3] += len(rows)
    if times is not None:
        for key, value in zip(("model_seconds", "predict_seconds", "code_seconds",
                               "model_steps"), spent):
            times[key] = times.get(key, 0) + value
    return True


def run_prefilled(ctx, counts, grid: np.ndarray, llm_input: np.ndarray, bos: int, code,
                  predictor, chunk: int, times: dict | None = None) -> bool:
    """``run``'s schedule for an encoder, whose symbols (``grid``) are all known: each
    forward pass feeds every live stream up to ``chunk`` of its next inputs at once (a
    prefill), then the predictor and ``code`` take the pass's logits step by step, in
    ``run``'s order.  The context must compute a row as one token at a time would
    (the exact engine: a row depends only on its own stream's slots up to its own, and
    ``ctx.room`` keeps a pass from crossing a slide), so the bits are ``run``'s: the
    decoder steps through ``run`` and gets the same probabilities."""
    lengths = np.asarray(counts)
    steps = int(lengths[0]) if len(counts) else 0
    clock, spent = time.perf_counter, [0.0, 0.0, 0.0, 0]
    inputs = np.empty_like(grid)  # the model's input at step t: the symbol before it
    inputs[:, 0] = bos
    inputs[:, 1:] = llm_input[grid[:, :-1]]
    ctx.reset()
    if predictor is not None:
        predictor.start(counts)
    t = 0
    while t < steps:
        t0 = clock()
        live = int(np.count_nonzero(lengths > t))
        k = min(chunk, ctx.room(0), steps - t)  # a block's streams slide together
        fed = np.minimum(lengths[:live] - t, k)  # the last pass: shorter streams end first
        for i in range(live):
            ctx.waiting[i, :fed[i]] = inputs[i, t:t + fed[i]]
            ctx.pending[i] = fed[i]
        logits, hidden = ctx.step(np.arange(live), every=True), ctx.hidden
        first = np.r_[0, np.cumsum(fed)[:-1]]  # each stream's first row in the pass
        spent[0] += clock() - t0
        spent[3] += int(fed.sum())
        for j in range(k):
            t1 = clock()
            now = int(np.count_nonzero(lengths > t + j))
            rows = first[:now] + j
            skip = np.zeros(now, dtype=bool)
            probs = (predictor.mix(logits[rows], skip, hidden[rows] if hidden is not None
                                   else None) if predictor is not None else logits[rows])
            t2 = clock()
            symbols = code(t + j, now, probs)
            t3 = clock()
            if symbols is None:
                return False
            if predictor is not None:
                predictor.update(symbols, skip)
            spent[1] += t2 - t1 + clock() - t3
            spent[2] += t3 - t2
        t += k
    if times is not None:
        for key, value in zip(("model_seconds", "predict_seconds", "code_seconds",
                               "model_steps"), spent):
            times[key] = times.get(key, 0) + value
    return True
