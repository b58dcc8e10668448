"""The online predictors: each one switches off, the skip schedule replays exactly,
and the ensemble's memory does not grow with the input beyond its history."""

import numpy as np
import pytest

import nacrith_codec as nc
from conftest import SMALL
from nacrith_codec import container
from nacrith_codec.config import MODEL_ALONE, SKIP_PPM, CodecConfig
from nacrith_codec.predictions.history import History
from nacrith_codec.predictions.match import MatchModel
from nacrith_codec.predictions.ngram import NGram
from nacrith_codec.predictions import Predictor
from nacrith_codec.predictions.cache import PROJECTED

VARIANTS = {
    "all": dict(skip_ppm=SKIP_PPM),
    "model-alone": MODEL_ALONE,
    "no-ngram": dict(ngram_order=0),
    "no-match": dict(match_min=0, skip_ppm=0),
    "no-bias": dict(bias_rate_ppm=0),
    "fixed-mixer": dict(mixer_rate_ppm=0),
    "no-cache": dict(cache_size=0),  # the predictions of format version 6
    "small-cache": dict(cache_size=64, cache_theta=20),  # a ring that wraps
    "no-skip": dict(skip_ppm=0),
    "float64": dict(skip_ppm=SKIP_PPM, float_bits=64),  # the arithmetic of format version 3
    "model-alone-float64": {**MODEL_ALONE, "float_bits": 64},
}


@pytest.fixture(scope="module")
def repetitive(alice) -> bytes:
    """A paragraph and two copies of it, each copy with one word changed: matches run
    long and break."""
    start = alice.index(b"There was nothing so VERY remarkable")
    para = alice[start:start + 300]
    return para + para.replace(b"Rabbit", b"Rabbits") + para.replace(b"nothing", b"naught")


@pytest.fixture(scope="module")
def coded(repetitive):
    out = {}
    for name, options in VARIANTS.items():
        c = nc.NacrithCompressor(**SMALL, **options)
        out[name] = c.compress(repetitive) + c.flush(), c.stats
    return out


@pytest.mark.parametrize("name", VARIANTS)
def test_every_component_on_and_off_round_trips(coded, repetitive, name):
    stream, stats = coded[name]
    d = nc.NacrithDecompressor()
    assert d.decompress(stream) == repetitive
    assert d.stats["model_steps"] == stats["model_steps"]  # the same schedule
    header, _ = container.parse_header(stream)
    assert header.config == CodecConfig(**SMALL, **VARIANTS[name])


def _payload(stream: bytes) -> bytes:
    """The model's range-coder bytes of the first block (the header aside)."""
    header, pos = container.parse_header(stream)
    return container.parse_record(stream, pos, header, 0)[0].payload


@pytest.mark.parametrize("name", [n for n in VARIANTS if n != "all"])
def test_every_switch_changes_the_coding(coded, name):
    assert _payload(coded[name][0]) != _payload(coded["all"][0])


def test_float_precision_changes_the_model_alone_coding(coded):
    assert _payload(coded["model-alone-float64"][0]) != _payload(coded["model-alone"][0])


def test_the_ensemble_beats_the_model_alone_on_repeats(coded):
    assert len(coded["all"][0]) < len(coded["model-alone"][0])


def test_skip_fires_and_the_decoder_replays_its_schedule(coded):
    _, stats = coded["all"]
    assert stats["model_steps"] < 0.8 * stats["tokens"]  # the copies skip the model
    assert coded["no-skip"][1]["model_steps"] == stats["tokens"]


def test_skip_holds_back_at_most_max_pending_tokens(repetitive):
    # a window so short that at most 7 tokens may wait: slides happen between skips
    # (the cache off: with it this input sits on the encoder's give-up line at its first
    # check, one coder word over, though the cache makes the block 10% smaller in the end;
    # the exact engine's logits put it over that line too, so llama.cpp's are taken here,
    # and the golden v6-skip stream holds the exact engine's skips)
    options = dict(streams=1, window=40, slide=32, sink=1, skip_ppm=SKIP_PPM, cache_size=0,
                   engine="llama.cpp")
    c = nc.NacrithCompressor(**options)
    stream = c.compress(repetitive) + c.flush()
    assert CodecConfig(**options).max_pending == 7
    assert c.stats["segments"] == {"model": len(repetitive)}
    assert c.stats["model_steps"] < c.stats["tokens"]
    assert nc.decompress(stream) == repetitive


# -- the predictors on their own (no model) --------------------------------------------

def test_ngram_counts_and_replaces_continuations():
    ng = NGram(order=2, bits=10)
    h = np.array([[11, 22], [11, 33]], dtype=np.uint64)  # two streams share an order-1 context
    ng.update(h, np.array([5, 7]))
    ng.update(h[:1], np.array([5]))
    token, count = ng.lookup(h)
    assert dict(zip(token[0, 0], count[0, 0]))[5] == 2.0
    assert dict(zip(token[0, 0], count[0, 0]))[7] == 1.0
    assert token[1, 1].tolist().count(7) == 1 and 5 not in token[1, 1]
    for symbol in range(100, 110):  # more continuations than slots: the rarest go
        ng.update(h[:1], np.array([symbol]))
    token, _ = ng.lookup(h[:1])
    assert 5 in token[0, 0] and 109 in token[0, 0]


def test_ngram_detects_bucket_collisions():
    ng = NGram(order=1, bits=10)
    ng.update(np.array([[1]], dtype=np.uint64), np.array([9]))
    other = np.array([[1 + (1 << 10) + (1 << 50)]], dtype=np.uint64)  # same bucket, other check
    token, count = ng.lookup(other)
    assert (token == -1).all() and (count == 0).all()


def test_match_model_follows_repeats_across_streams():
    seq = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3]
    h = History([20, 20])
    m = MatchModel(h, 2, min_len=3, bits=12)
    prev = None
    for t in range(20):
        symbols = np.array([seq[t % 10], seq[(t + 5) % 10] + 100 * (t < 10)])
        h.append(symbols)
        hashes = h.hashes(2, 3)[:, -1]
        m.update(symbols, hashes, prev)
        prev = hashes
        predicted, length = m.predict(2)
        if t >= 12:  # stream 0 repeats its first period; stream 1 never matched before t 10
            assert predicted[0] == seq[(t + 1) % 10] and length[0] >= 3


def test_ensemble_memory_is_bounded_by_its_tables_and_history():
    """Fixed-size tables (the neural cache's ring among them) plus one int32 per symbol of
    the block, however long the input."""
    rng = np.random.default_rng(1)
    v, streams, steps, dim = 500, 4, 3000, 16
    config = CodecConfig(ngram_bits=12, skip_ppm=SKIP_PPM, cache_size=256)
    p = Predictor(v, streams, None, config, dim)
    counts = [steps] * streams
    p.start(counts)
    sizes = []
    for t in range(steps):
        skip = p.skips(streams, np.ones(streams, bool))
        rows = int((~skip).sum())
        p.mix(rng.normal(size=(rows, v)), skip, rng.normal(size=(rows, dim)))
        p.update(rng.integers(0, 50, size=streams).astype(np.int32), skip)
        if t in (10, steps - 1):
            sizes.append(sum(a.nbytes for a in (p.ngram.check, p.ngram.token, p.ngram.count,
                                                 p.match.table, p.history.tokens, p.bias.bias,
                                                 p.mixer.w)) + p.cache.nbytes())
    assert sizes[0] == sizes[1]  # nothing grew while coding
    assert p.cache.filled == 256  # the ring is full and wrapped many times
    tables = (1 << 12) * (4 + 8 * 4) + (1 << 18) * 8 + v * 8 + 256 * (PROJECTED + 16)
    assert sizes[1] <= tables + 4 * streams * (steps + 1) + p.mixer.w.nbytes


def test_the_neural_cache_recalls_what_followed_similar_states_exactly():
    """Rows are computed alone (a row's weights do not depend on what shares its step),
    the entries' order does not change a weight (sums of integers), and a state seen
    before recalls the token that followed it."""
    from nacrith_codec.predictions.cache import NeuralCache
    rng = np.random.default_rng(2)
    v, dim = 300, 24
    states = rng.normal(size=(40, dim)).astype(np.float32)
    tokens = rng.integers(0, v, size=40)

    def filled(order):
        cache = NeuralCache(64, dim, 50, v)
        for i in order:
            cache.predict(states[i:i + 1])
            cache.add(np.array([0]), tokens[i:i + 1])
        return cache

    a, b = filled(range(40)), filled(rng.permutation(40))
    lam, recall, total = a.predict(states[:6])
    weights = recall.dense(6)
    _, recall_b, total_b = b.predict(states[:6])
    assert np.array_equal(weights, recall_b.dense(6)) and np.array_equal(total, total_b)
    for i in range(6):
        _, alone, _ = a.predict(states[i:i + 1])
        assert np.array_equal(alone.dense(1)[0], weights[i])
        assert np.argmax(weights[i]) == tokens[i]  # its own state is the most similar
    assert np.all(weights.sum(axis=1) == total) and np.all(lam >= 0) and np.all(lam < 0.8)


@pytest.mark.parametrize("dim", [24, 576])
def test_the_neural_caches_compiled_similarities_are_numpys(dim, monkeypatch):
    """NeuralCache.predict with the compiled pass (fused.similar) and with numpy's
    operations: the same weights, totals, lambdas and buckets, bit for bit, over a ring
    that wrapped, entries of length 0 and states that repeat (cosines of 1)."""
    from nacrith_codec.predictions import fused
    from nacrith_codec.predictions.cache import NeuralCache
    rng = np.random.default_rng(7)
    states = rng.normal(size=(300, dim)).astype(np.float32)
    states[::7] = states[3]
    states[5] = 0.0
    tokens = rng.integers(0, 500, size=300)
    runs = {}
    for compiled in (True, False):
        monkeypatch.setattr(fused, "available", lambda: compiled)
        cache, seen = NeuralCache(128, dim, 50, 500), []
        for t in range(0, 300, 4):
            lam, recall, total = cache.predict(states[t:t + 4])
            seen.append((lam, recall.rows, recall.tokens, recall.weights, total, cache._bucket))
            cache.learn(np.full(4, 0.01), total > 0, total > 0)
            cache.add(np.arange(4), tokens[t:t + 4])
        runs[compiled] = seen
    assert any(len(step[1]) for step in runs[True])
    for a, b in zip(runs[True], runs[False]):
        assert all(x.dtype == y.dtype and x.tobytes() == y.tobytes() for x, y in zip(a, b))
    # and the pass's own numbers, before the grid of e**x rounds them: numpy's cosines
    keys = rng.integers(-127, 128, size=(200, 128)).astype(np.int8)
    keys[7] = 0
    q = np.r_[keys[:3], rng.integers(-127, 128, size=(2, 128))].astype(np.float32)
    lengths = np.sqrt(np.einsum("rd,rd->r", *(2 * [keys.astype(np.float64)])))
    length = np.sqrt(np.einsum("rd,rd->r", q, q).astype(np.float64))
    dots = (q @ keys.T.astype(np.float32)).astype(np.float64)
    scale = length[:, None] * lengths[None, :]
    cos = dots / np.where(scale > 0, scale, 1.0)
    x = (cos - 1.0) * 50.0
    best, rows, entries, xs = fused.similar(q, length, keys, lengths, 50.0, -3.0)
    assert best.tobytes() == cos.max(axis=1).tobytes()
    assert [rows.tolist(), entries.tolist()] == [a.tolist() for a in np.nonzero(x > -3.0)]
    assert xs.tobytes() == x[x > -3.0].tobytes()
