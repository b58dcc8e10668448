"""The model alone over the codec's schedule: the floor under the codec's time.

``passes`` tokenizes a text as the codec does, splits it into the same streams
and runs them through the codec's own schedule (pipeline/schedule.py) on a
context of the same shape (streams, window, slides, threads), with no predictors
and no range coder: each step's logits go to a callback.  ``nacrith bench --raw``
times it to show what share of the model's own rate the codec reaches, and
``nacrith bench --ablation`` records its logits.
"""

from __future__ import annotations

import time

from ..pipeline import schedule
from ..pipeline.stats import bits_per_byte


def grid(engine, data: bytes, config):
    """(symbols (streams, steps) int32, stream lengths) of ``data`` under ``config``."""
    tok = engine.tokenizer
    symbols = tok.tokenize(data, tok.segments(data))
    counts = schedule.split(len(symbols), config)
    return schedule.to_grid(symbols, counts), counts


def passes(engine, symbols, counts, config, threads=None, each=None):
    """Every step of the schedule, one model call each, ``each(t, live, logits, hidden)``
    seeing the logits of the live streams (and their hidden states, with the cache on)."""
    with engine.context(config, threads) as ctx:
        def code(t, live, logits):
            if each is not None:
                each(t, live, logits, ctx.hidden)
            return symbols[:live, t]

        schedule.run(ctx, counts, engine.tokenizer.llm_input, engine.model.bos, code)


def rate(engine, data: bytes, config, threads=None) -> tuple[int, float]:
    """(tokens, seconds) of llama.cpp alone over ``data``'s schedule, block by block."""
    tokens, seconds = 0, 0.0
    for at in range(0, len(data), config.block_size):
        symbols, counts = grid(engine, data[at:at + config.block_size], config)
        begin = time.perf_counter()
        passes(engine, symbols, counts, config, threads)
        seconds += time.perf_counter() - begin
        tokens += int(sum(counts))
    return tokens, seconds


def _codec(data, config, model, threads):
    """Wall seconds and statistics of a verified compress and decompress."""
    from ..api import NacrithCompressor, NacrithDecompressor
    begin = time.perf_counter()
    c = NacrithCompressor(model, config=config, threads=threads, content_size=len(data))
    blob = c.compress(data) + c.flush()
    middle = time.perf_counter()
    d = NacrithDecompressor(model, threads=threads)
    if d.decompress(blob) != data or not d.eof:
        raise AssertionError("nacrith did not round-trip")
    return middle - begin, time.perf_counter() - middle, c.stats, len(blob)


def run(paths, engine, model, threads=None, streams=(8,), limit=None, out=print):
    """The table of ``nacrith bench --raw``: llama.cpp alone against the codec, same schedule."""
    from ..config import SKIP_PPM, CodecConfig
    out(f"{'file':14} {'B':>2} {'skip':4} {'raw tok/s':>9} {'compress':>14} {'decompress':>14} "
        f"{'passes/tok':>10} {'bpb':>6}  compress time: model / predictors / coder / rest")
    for path in paths:
        with open(path, "rb") as f:
            data = f.read(limit) if limit else f.read()
        for b in streams:
            for skip in (True, False):
                config = CodecConfig(streams=b, skip_ppm=SKIP_PPM if skip else 0)
                tokens, seconds = rate(engine, data, config, threads)
                raw_rate = tokens / seconds
                comp_s, decomp_s, stats, size = _codec(data, config, model, threads)
                steps = max(stats.get("model_steps", 0), 1)
                parts = [stats[k] for k in ("model_seconds", "predict_seconds", "code_seconds")]
                parts.append(comp_s - sum(parts))
                cells = [f"{tokens / s:5.1f} {100 * tokens / s / raw_rate:3.0f}%"
                         for s in (comp_s, decomp_s)]
                out(f"{path.rsplit('/', 1)[-1][:14]:14} {b:2d} {'on' if skip else 'off':4} "
                    f"{raw_rate:9.1f} {cells[0]:>14} {cells[1]:>14} "
                    f"{steps / max(tokens, 1):10.3f} {bits_per_byte(len(data), size) or 0:6.3f}  "
                    + " / ".join(f"{100 * p / comp_s:.0f}%" for p in parts), flush=True)
