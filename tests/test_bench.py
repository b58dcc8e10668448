"""The measuring tools run the codec's own schedule: ``nacrith bench --ablation`` replays the
predictors over recorded logits and must see what the codec saw."""

import os
import subprocess
import sys
import tempfile

import nacrith_codec as nc
from nacrith_codec.bench import ablation
from nacrith_codec.config import CodecConfig
from nacrith_codec.engines import Engine
from nacrith_codec.engines.model_file import resolve_model_path


def test_the_ablation_replay_sees_the_codec_s_probabilities(english):
    data = english[:500]
    config = CodecConfig(block_size=len(data), streams=2, min_stream_tokens=16, window=48,
                         slide=16)
    engine = Engine.get(resolve_model_path(None), kind=config.engine)
    with tempfile.TemporaryDirectory() as folder:
        logits, grid, counts, _ = ablation.record(engine, data, config, folder)
        replayed = ablation.replay(logits, grid, counts, config, engine.tokenizer)
        del logits
    c = nc.NacrithCompressor(config=config)
    c.compress(data)
    c.flush()
    coded = c.stats["model_bits"]  # the codec's cross-entropy under its own probabilities
    assert replayed["passes"] == 1.0
    # the same schedule and predictors over float16 logits: the same bits within 1%
    # (a step out of line, or another order of streams, costs far more)
    assert abs(replayed["bits"] - coded) <= 0.01 * coded, (replayed["bits"], coded)


def test_bench_ablation_prints_every_row(tmp_path, english):
    path = tmp_path / "a.txt"
    path.write_bytes(english[:200])
    r = subprocess.run([sys.executable, "-m", "nacrith_codec.cli", "bench", "--ablation",
                        str(path)], capture_output=True, timeout=600, env=dict(os.environ))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.decode().splitlines()
    rows = list(ablation.ROWS) + list(ablation.SCHEDULES)
    assert len(lines) == 2 + len(rows)
    for line, name in zip(lines[2:], rows):
        assert line.startswith(name) and 0 < float(line[len(name):].split()[0]) < 8
