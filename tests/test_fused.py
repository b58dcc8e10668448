"""The ensemble's compiled vocabulary-wide passes (predictions/fused.py) give the numpy
reference's bits: each pass against the code it replaces, on rows of both precisions
with the values that round or compare unusually, and a stream coded with and without
them, byte for byte."""

import numpy as np
import pytest

import nacrith_codec as nc
from nacrith_codec.predictions import arith, fused
from nacrith_codec.predictions.bias import BiasHead
from nacrith_codec.predictions.mixer import Mixer

V = 5003  # an odd width: no kernel may assume whole SIMD lanes


def _rows(rng, dtype, rows=4):
    z = (rng.normal(size=(rows, V)) * 9).astype(dtype)
    z[0, :6] = [-0.0, 0.0, 1e-30, -1e-30, 200.0, -200.0]  # signed zeros, far below the top
    z[1, :] = 3.0  # a row of ties
    z[2, 10:20] = z[2].max()  # several maxima
    return z


def _same(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_and_expectation_are_the_references(dtype):
    rng = np.random.default_rng(1)
    wide = np.zeros((4, V + 1), dtype)  # the predictor's rows: V tokens and the escape
    wide[:, :V] = _rows(rng, dtype)
    never = np.array([3, 7, V - 1])
    for scale in (1.0 - 2.0 ** -20, np.array([0.25, 0.5, 1.0, 0.999]) * (1.0 - 2.0 ** -20)):
        a, b = wide.copy(), wide.copy()
        arith.softmax(a[:, :V], never, scale)
        fused.softmax(b[:, :V], never, scale)
        assert _same(a, b)
    probs, values = a[:, :V], _rows(rng, np.float32) * 1000
    values[3, :3] = [2.0 ** 20, -(2.0 ** 20), 0.5]  # clipped; a half rounds to even
    assert _same(arith.expectation(probs, values), fused.expectation(probs, values))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_mixer_and_the_bias_head_learn_as_the_references(dtype, monkeypatch):
    rng = np.random.default_rng(2)
    llm, start = _rows(rng, np.float32), rng.normal(size=V)
    heads = {}
    for compiled in (False, True):
        monkeypatch.setattr(fused, "available", lambda: compiled)
        mixer, bias = Mixer(V, 3, 4, 0.002, [0.5, 0.5, 1.0, 1.0], exact=1), BiasHead(V, 0.1, 1)
        mixer.a[:] = [1.0, 0.7, 1.3]  # not exact in float32
        bias.bias[:] = start
        sets, cand = np.array([0, 1, 2, 1]), np.array([[5, -1], [7, 8], [-1, -1], [9, 5]])
        feat = np.random.default_rng(3).uniform(size=(4, 2, 4))
        out = np.zeros((4, V + 1), dtype)
        mixer.mix(out, llm, bias.bias, cand, feat, sets)
        plain = mixer.mix(np.zeros((4, V + 1), dtype), llm, None, cand, feat, sets)
        probs = arith.softmax(out[:, :V].copy(), None, 1.0)
        symbols = np.array([5, 7, 7, 4000])
        mixer.learn(probs, llm, cand, feat, sets, symbols)
        bias.learn(probs, symbols)
        heads[compiled] = (out, plain, bias.bias.copy(), mixer.a.copy(), mixer.w.copy())
    for ref, got in zip(heads[False], heads[True]):
        assert _same(ref, got)


def test_the_cache_blend_is_the_reference():
    """The predictor's mixture with the cache's sparse weights (the compiled or numpy
    scaling, then the tokens with a weight) against the dense formula it replaces."""
    from nacrith_codec.predictions.cache import Recall
    rng = np.random.default_rng(4)
    for dtype in (np.float32, np.float64):
        p = np.zeros((4, V + 1), dtype)
        p[:, :V] = np.abs(_rows(rng, dtype))
        weights = np.floor(rng.uniform(0, 2.0 ** 30, size=(4, V))) * (rng.uniform(size=(4, V)) < 0.01)
        weights[0, 7] = 0.0  # an entry whose terms rounded to 0
        keep, share = 1.0 - rng.uniform(0, 0.8, size=4), rng.uniform(0, 1e-9, size=4)
        ref = np.zeros((4, V + 1), dtype)
        ref[:, :V] = p[:, :V] * keep[:, None] + weights * share[:, None]
        rows, tokens = np.nonzero(weights)
        rows, tokens = np.r_[0, rows], np.r_[7, tokens]
        recall = Recall(rows, tokens, weights[rows, tokens], V)
        assert np.array_equal(recall.dense(4), weights)
        assert np.array_equal(recall.at(np.array([7, tokens[-1], 0, 1])),
                              weights[np.arange(4), [7, tokens[-1], 0, 1]])
        for compiled in (True, False):
            got = np.zeros((4, V + 1), dtype)
            if compiled:
                fused.scaled(got, p, keep, V)
            else:
                got[:, :V] = p[:, :V] * keep[:, None]
            got[rows, tokens] = p[rows, tokens] * keep[rows] + recall.weights * share[rows]
            assert _same(ref, got)


def test_a_stream_is_the_same_with_and_without_the_compiled_passes(english, monkeypatch):
    data = english[:700]
    options = dict(streams=2, min_stream_tokens=16, window=56, slide=16)
    with_passes = nc.compress(data, **options)  # every compressor builds its predictors
    monkeypatch.setattr(fused, "available", lambda: False)
    assert nc.compress(data, **options) == with_passes
    assert nc.decompress(with_passes) == data
