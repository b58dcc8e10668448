"""``nacrith bench --ablation``: what each online predictor adds, on identical model predictions.

The model's logits for a file are recorded once, under the codec's own
schedule (its streams, window and slides), in a float16 memory map in a
temporary directory (about 100 KB per token: 4 GB for alice29.txt), with the
final hidden states the neural cache reads (float32, as the model gave them); the
predictors are then replayed over them in every configuration of the table.
A row's bits per byte are the cross-entropy of the symbols under its
probabilities (the range coder adds about 0.1%).  A skipping configuration is
replayed over logits recorded without skipping: in a real run the model sees
skipped tokens in a batch with the next one, whose logits differ slightly.
The whole file is one block: meant for text files up to 16 MiB.

The levers that change the schedule itself (``SCHEDULES``: fewer, longer streams, a
longer window) change the model's logits, so each is recorded again and replayed
with the defaults: those rows cost one model pass over the file each.
"""

from __future__ import annotations

import os
import tempfile
import time

import numpy as np

from ..config import MAX_BLOCK_SIZE, MODEL_ALONE, SKIP_PPM, CodecConfig
from ..engines.interface import StreamTokens
from ..pipeline import schedule
from ..predictions import Predictor
from . import model_rate

_OFF = dict(MODEL_ALONE)
ROWS = {
    "model alone": _OFF,
    "+ N-gram (fixed weights)": {**_OFF, "ngram_order": CodecConfig.ngram_order},
    "+ match (fixed weight)": {**_OFF, "match_min": CodecConfig.match_min},
    "+ bias head": {**_OFF, "bias_rate_ppm": CodecConfig.bias_rate_ppm},
    "+ mixer": {**_OFF, "mixer_rate_ppm": CodecConfig.mixer_rate_ppm},
    "+ match and skip": {**_OFF, "match_min": CodecConfig.match_min,
                         "skip_ppm": SKIP_PPM},
    "+ neural cache": {**_OFF, "cache_size": CodecConfig.cache_size},
    "all but the cache (version 6)": {"cache_size": 0},
    "all (defaults)": {},
    "all and the skip": {"skip_ppm": SKIP_PPM},
    "all in float64 (version 3)": {"float_bits": 64},
}
#: Rows whose schedule differs from the defaults': recorded again, replayed with all on.
SCHEDULES = {
    "all, 4 streams": {"streams": 4},
    "all, window 2,048": {"window": 2048},
}


def record(engine, data: bytes, config: CodecConfig, folder: str, threads=None):
    """((logits memmap (streams, steps, V), hidden states (streams, steps, d)), symbol grid,
    stream lengths, model seconds)."""
    grid, counts = model_rate.grid(engine, data, config)
    logits = np.lib.format.open_memmap(os.path.join(folder, "logits.npy"), "w+", np.float16,
                                       (len(counts), counts[0], engine.tokenizer.n_vocab))
    hidden = np.zeros((len(counts), counts[0], engine.model.n_embd), dtype=np.float32)

    def keep(t, live, out, states):
        logits[:live, t] = out - out.max(axis=1, keepdims=True)
        hidden[:live, t] = states

    begin = time.perf_counter()
    model_rate.passes(engine, grid, counts, config.replace(cache_size=CodecConfig.cache_size),
                      threads, keep)
    return (logits, hidden), grid, counts, time.perf_counter() - begin


class _Recorded(StreamTokens):
    """A context that answers each step with the logits and hidden states recorded for it
    (the schedule pushes once a step, so the pushes count the steps)."""

    def __init__(self, recorded, streams: int, pending: int):
        super().__init__(streams, pending)
        (self._logits, self._hidden), self._t = recorded, -1

    def push(self, tokens):
        super().push(tokens)
        self._t += 1

    def step(self, rows):
        self.pending[rows] = 0
        self.hidden = self._hidden[rows, self._t]
        return np.asarray(self._logits[rows, self._t], dtype=np.float32)


def replay(recorded, grid, counts, config: CodecConfig, tokenizer) -> dict:
    """The cross-entropy of the file's symbols under the predictors of ``config`` fed the
    recorded logits, through the codec's own schedule (its skips included)."""
    v = tokenizer.n_vocab
    predictor = Predictor(v, len(counts), tokenizer.never, config,
                          recorded[1].shape[2] if config.cache_size else 0)
    totals = {"bits": 0.0}

    def code(t, live, probs):
        symbols = grid[:live, t]
        totals["bits"] -= float(np.log2(probs[np.arange(live), np.minimum(symbols, v)]).sum())
        totals["bits"] += 8.0 * int((symbols >= v).sum())
        return symbols

    times: dict = {}
    begin = time.perf_counter()
    ctx = _Recorded(recorded, len(counts), config.max_pending)
    schedule.run(ctx, counts, tokenizer.llm_input, tokenizer.model.bos, code, predictor,
                 config.max_pending, times)
    return {"bits": totals["bits"], "passes": times.get("model_steps", 0) / int(sum(counts)),
            "ms_per_step": 1000 * (time.perf_counter() - begin) / counts[0]}


def run(paths, engine, threads=None, out=print):
    for path in paths:
        with open(path, "rb") as f:
            data = f.read()
        base = CodecConfig(block_size=min(max(len(data), 1), MAX_BLOCK_SIZE))
        # one recording for the predictors' rows, then one per schedule, replayed with all on
        recordings = [(base, ROWS)] + [(base.replace(**changes), {name: {}})
                                       for name, changes in SCHEDULES.items()]
        for config, rows in recordings:
            with tempfile.TemporaryDirectory(prefix="nacrith-ablation-") as folder:
                recorded, grid, counts, seconds = record(engine, data, config, folder, threads)
                if config is base:
                    tokens = int(sum(counts))
                    out(f"{os.path.basename(path)}: {len(data)} bytes, {tokens} tokens, model "
                        f"{tokens / seconds:.1f} tokens/s ({len(counts)} streams, window "
                        f"{base.window})")
                    out(f"{'configuration':28} {'bpb':>7} {'passes/token':>13} "
                        f"{'predictors ms/step':>19}")
                for name, changes in rows.items():
                    r = replay(recorded, grid, counts, config.replace(**changes), engine.tokenizer)
                    out(f"{name:28} {r['bits'] / len(data):7.4f} {r['passes']:13.3f} "
                        f"{r['ms_per_step']:19.1f}", flush=True)
                del recorded
