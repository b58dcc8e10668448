"""``nacrith bench --ablation``: what each online predictor adds, on identical model predictions.

The model's logits for a file are recorded once, under the codec's own
schedule (its streams, window and slides), in a float16 memory map in a
temporary directory (about 100 KB per token: 4 GB for alice29.txt); the
predictors are then replayed over them in every configuration of the table.
A row's bits per byte are the cross-entropy of the symbols under its
probabilities (the range coder adds about 0.1%).  A skipping configuration is
replayed over logits recorded without skipping: in a real run the model sees
skipped tokens in a batch with the next one, whose logits differ slightly.
The whole file is one block: meant for text files up to 16 MiB.
"""

from __future__ import annotations

import os
import tempfile
import time

import numpy as np

from . import raw
from .config import MAX_BLOCK_SIZE, MODEL_ALONE, SKIP_PPM, CodecConfig
from .predict import Predictor

_OFF = dict(MODEL_ALONE)
ROWS = {
    "model alone": _OFF,
    "+ N-gram (fixed weights)": {**_OFF, "ngram_order": CodecConfig.ngram_order},
    "+ match (fixed weight)": {**_OFF, "match_min": CodecConfig.match_min},
    "+ bias head": {**_OFF, "bias_rate_ppm": CodecConfig.bias_rate_ppm},
    "+ mixer": {**_OFF, "mixer_rate_ppm": CodecConfig.mixer_rate_ppm},
    "+ match and skip": {**_OFF, "match_min": CodecConfig.match_min,
                         "skip_ppm": SKIP_PPM},
    "all (defaults)": {},
    "all and the skip": {"skip_ppm": SKIP_PPM},
    "all in float64 (version 3)": {"float_bits": 64},
}


def record(engine, data: bytes, config: CodecConfig, folder: str, threads=None):
    """(logits memmap (streams, steps, V), symbol grid, stream lengths, model seconds)."""
    grid, counts = raw.grid(engine, data, config)
    logits = np.lib.format.open_memmap(os.path.join(folder, "logits.npy"), "w+", np.float16,
                                       (len(counts), counts[0], engine.tokenizer.n_vocab))
    begin = time.perf_counter()
    for t, live, out in raw.passes(engine, grid, counts, config, threads):
        logits[:live, t] = out - out.max(axis=1, keepdims=True)
    return logits, grid, counts, time.perf_counter() - begin


def replay(logits, grid, counts, config: CodecConfig, tokenizer) -> dict:
    v = tokenizer.n_vocab
    predictor = Predictor(v, len(counts), tokenizer.never, config)
    predictor.start(counts)
    waiting = np.ones(len(counts), dtype=np.int64)
    bits, passes, begin = 0.0, 0, time.perf_counter()
    for t in range(counts[0]):
        live = int(np.count_nonzero(np.array(counts) > t))
        symbols = grid[:live, t]
        skip = predictor.skips(live, waiting[:live] < config.max_pending)
        probs = predictor.mix(np.asarray(logits[:live, t][~skip], dtype=np.float32), skip)
        index = np.minimum(symbols, v)
        bits -= float(np.log2(probs[np.arange(live), index]).sum())
        bits += 8.0 * int((symbols >= v).sum())
        passes += int((~skip).sum())
        predictor.update(symbols, skip)
        waiting[:live] = np.where(skip, waiting[:live] + 1, 1)
    tokens = int(sum(counts))
    return {"bits": bits, "passes": passes / tokens,
            "ms_per_step": 1000 * (time.perf_counter() - begin) / counts[0]}


def run(paths, engine, threads=None, out=print):
    for path in paths:
        with open(path, "rb") as f:
            data = f.read()
        base = CodecConfig(block_size=min(max(len(data), 1), MAX_BLOCK_SIZE))
        with tempfile.TemporaryDirectory(prefix="nacrith-ablation-") as folder:
            logits, grid, counts, seconds = record(engine, data, base, folder, threads)
            tokens = int(sum(counts))
            out(f"{os.path.basename(path)}: {len(data)} bytes, {tokens} tokens, model "
                f"{tokens / seconds:.1f} tokens/s ({len(counts)} streams, window {base.window})")
            out(f"{'configuration':28} {'bpb':>7} {'passes/token':>13} {'predictors ms/step':>19}")
            for name, changes in ROWS.items():
                r = replay(logits, grid, counts, base.replace(**changes), engine.tokenizer)
                out(f"{name:28} {r['bits'] / len(data):7.4f} {r['passes']:13.3f} "
                    f"{r['ms_per_step']:19.1f}", flush=True)
            del logits
