"""Predictions: next-symbol probabilities for every live stream of a step.

The symbol alphabet is the model's vocabulary plus one ESCAPE symbol (index
``n_vocab``) that announces a raw byte the vocabulary cannot represent.  The
escape gets a fixed probability, part of the format version, so text without
such bytes pays about 1e-6 bit per token for the possibility.

With every online predictor switched off the probabilities are the model's
softmax.  Otherwise the ensemble of a block (history.py, ngram.py, match.py,
bias.py, mixer.py, and last the neural cache, cache.py) refines them; its state is shared by the block's streams,
which all learn from each other's past, and it is reset with every block so
blocks stay independently decodable.  When the cheap predictors alone are
confident enough (``skip``), a row is coded without the model and the stream
feeds its symbol to the model later, together with its next one.

The encoder and the decoder call exactly these functions on exactly the same
inputs, in the same order, which is what makes their integer models identical.
"""

from __future__ import annotations

import numpy as np

from .bias import BiasHead
from . import arith, fused
from .cache import NeuralCache
from .history import History
from .match import MatchModel
from .mixer import Mixer
from .ngram import NGram

ESCAPE_PROBABILITY = 2.0 ** -20
MATCH_EDGES = np.array([1, 8, 12, 16, 24, 32, 48])  # match length buckets of the weight sets
SKIP_MIN_MATCH = 16  # a stream may skip the model only while following a match this long
MATCH_BITS = 18  # the match table: 2**18 entries


def numpy_environment() -> dict:
    """What the predictors' arithmetic depends on beyond the stream: numpy's version and
    the SIMD kernels it dispatches to on this CPU (its float32 exp differs between its
    AVX2 and SSE kernels, measured; docs/guarantees.md)."""
    core = getattr(np, "_core", None) or np.core
    umath = core._multiarray_umath
    simd = [f for f in umath.__cpu_dispatch__ if umath.__cpu_features__.get(f)]
    return {"numpy": np.__version__, "numpy_simd": ",".join(simd) or "baseline"}


class Predictor:
    """Turns a step's logits into symbol probabilities (rows, V + 1)."""

    def __init__(self, n_vocab: int, max_rows: int, never, config, n_embd: int = 0):
        self.n_vocab, self.config, self.n_embd = n_vocab, config, n_embd
        # Tokens the tokenizer never emits get probability 0 (the coder's
        # integer model still gives them its minimum frequency).
        self._never = np.flatnonzero(never) if never is not None else None
        self.dtype = config.dtype  # of every vocabulary-wide array
        self._buf = np.empty((max_rows, n_vocab + 1), dtype=self.dtype)
        self._skip_buf = np.empty((max_rows, n_vocab + 1), dtype=self.dtype)
        self._cache_buf = (np.empty((max_rows, n_vocab + 1), dtype=self.dtype)
                           if config.cache_size else None)
        c = config
        self.ensemble = c.ensemble
        self.skipping = self.ensemble and c.skips
        self._fused = bool(c.exact) and fused.available()  # compiled passes, the same bits
        self._exp = fused.softmax if self._fused else arith.softmax_for(c.exact)

    def _normalized(self, out: np.ndarray, rest=1.0) -> np.ndarray:
        """Rows of ``out`` holding logits in their first V columns, made probabilities in
        place: the softmax spreads ``rest`` (a share, or one per row) of what the escape
        leaves, tokens that never occur get 0, and the escape its fixed share last.  The
        one rule every row of every step follows."""
        v = self.n_vocab
        self._exp(out[:, :v], self._never, (1.0 - ESCAPE_PROBABILITY) * rest)
        out[:, v] = ESCAPE_PROBABILITY
        return out

    # -- the model alone (format versions 1 and 2, or every predictor off) ----------

    def _softmax(self, logits: np.ndarray) -> np.ndarray:
        rows, v = logits.shape
        out = self._buf[:rows]
        np.copyto(out[:, :v], logits, casting="same_kind")
        return self._normalized(out)

    # -- the ensemble --------------------------------------------------------------

    def start(self, counts):
        """Fresh state for a block whose streams have ``counts`` symbols."""
        if not self.ensemble:
            return
        c, streams = self.config, len(counts)
        self.history = History(counts)
        self.orders = c.ngram_order
        self.ngram = NGram(c.ngram_order, c.ngram_bits) if c.ngram_order else None
        self.match = (MatchModel(self.history, streams, c.match_min, MATCH_BITS)
                      if c.match_min else None)
        self.bias = (BiasHead(self.n_vocab, c.bias_rate_ppm * 1e-6, c.exact)
                     if c.bias_rate_ppm else None)
        n_features = 2 * self.orders + 2
        init = np.r_[np.tile([0.5, 0.5], self.orders), 1.0, 1.0]
        self._order_sets = self.orders + 1
        self._hits = np.zeros(len(MATCH_EDGES) + 1)  # matches come true, per length bucket
        self._tries = np.zeros(len(MATCH_EDGES) + 1)
        self.mixer = Mixer(self.n_vocab, (len(MATCH_EDGES) + 1) * self._order_sets, n_features,
                           c.mixer_rate_ppm * 1e-6, init, c.exact)
        self.cache = (NeuralCache(c.cache_size, self.n_embd, c.cache_theta, self.n_vocab)
                      if c.cache_size else None)
        self._width = max(self.orders, c.match_min)
        self._prev = None
        self._context(len(counts), self.history.hashes(len(counts), self._width))

    def _context(self, live: int, hashes):
        """Candidates and features of each live stream for the next step."""
        orders = self.orders
        slots = 0
        cands, feats = [], []
        n_features = 2 * orders + 2
        top = np.zeros(live, dtype=np.int64)
        if self.ngram is not None:
            token, count = self.ngram.lookup(hashes[:, :orders])  # (S, O, K)
            total = count.sum(axis=2, keepdims=True)
            share = np.divide(count, total, out=np.zeros_like(count), where=total > 0)
            sure = (count == total) * np.minimum(total, 16.0) / 16.0
            slots = token.shape[2]
            f = np.zeros((live, orders, slots, n_features))
            for k in range(orders):
                f[:, k, :, 2 * k] = share[:, k]
                f[:, k, :, 2 * k + 1] = sure[:, k]
            cands.append(token.reshape(live, -1))
            feats.append(f.reshape(live, -1, n_features))
            seen = (total[:, :, 0] > 0)
            top = np.where(seen.any(axis=1), orders - np.argmax(seen[:, ::-1], axis=1), 0)
        length = np.zeros(live, dtype=np.int64)
        if self.match is not None:
            symbol, length = self.match.predict(live)
            f = np.zeros((live, 1, n_features))
            f[:, 0, -2] = symbol >= 0
            f[:, 0, -1] = np.minimum(length, 32) / 32.0
            cands.append(symbol[:, None])
            feats.append(f)
        if cands:
            cand = np.concatenate(cands, axis=1)
            feat = np.concatenate(feats, axis=1)
            bad = (cand < 0) | (cand >= self.n_vocab)
            cand[bad] = -1
            feat[bad] = 0.0
        else:
            cand, feat = np.full((live, 1), -1), np.zeros((live, 1, n_features))
        self._cand, self._feat = cand, feat
        self._bucket = np.searchsorted(MATCH_EDGES, length, side="right")
        self._mset = self._bucket * self._order_sets + top
        self._length, self._predicted = length, cand[:, -1] if self.match is not None else None
        self._hashes = hashes

    def skips(self, live: int, allowed: np.ndarray) -> np.ndarray:
        """Which live streams are coded without the model this step (among ``allowed``:
        those with room to hold back one more token).

        A stream skips while it follows a match of at least SKIP_MIN_MATCH
        tokens and matches of that length bucket have come true with at least
        the configured probability so far in the block; the predicted token
        then gets that probability, the rest the bias head's softmax.
        """
        skip = np.zeros(live, dtype=bool)
        if not self.skipping or not live:
            return skip
        bucket = self._bucket[:live]
        q = (self._hits[bucket] + 0.5) / (self._tries[bucket] + 1.0)
        skip[:] = ((self._length >= SKIP_MIN_MATCH) & (self._predicted >= 0) & allowed
                   & (q >= self.config.skip_ppm * 1e-6))
        rows = np.flatnonzero(skip)
        if len(rows):
            p = self._skip_buf[:len(rows)]
            p[:, :self.n_vocab] = self._bias() if self.bias is not None else 0.0
            self._normalized(p, 1.0 - q[rows])
            p[np.arange(len(rows)), self._predicted[rows]] += (1.0 - ESCAPE_PROBABILITY) * q[rows]
            self._skip_p = p
        return skip

    def _bias(self):
        return self.bias.bias if self.bias is not None else None

    def mix(self, logits, skip: np.ndarray, hidden=None) -> np.ndarray:
        """Probabilities (live, V + 1); ``logits`` (and ``hidden``, the model's final
        hidden states, for the neural cache) have a row for each stream not skipped."""
        if not self.ensemble:
            return self._softmax(logits)
        live, v = len(skip), self.n_vocab
        model = np.flatnonzero(~skip)
        self._model_rows, self._llm = model, logits
        out = self._buf[:len(model)]
        if len(model):
            self.mixer.mix(out, logits, self._bias(), self._cand[model], self._feat[model],
                           self._mset[model])
            self._normalized(out)
        self._model_p = out  # what the mixer and the bias head learn from
        if self.cache is not None and len(model):
            out = self._recalled(out, hidden)
        if skip.any():  # rows of both kinds, in stream order
            both = np.empty((live, v + 1), dtype=self.dtype)
            both[model] = out
            both[skip] = self._skip_p
            return both
        return out

    def _recalled(self, p: np.ndarray, hidden) -> np.ndarray:
        """The rows ``p`` mixed with the neural cache's distributions (cache.py): the
        tokens' share (1 - lambda), the cache's lambda of what the escape leaves.  Each
        token's probability is ``p * (1 - lambda) + weight * share`` in float64, then the
        rows' precision; most tokens have no weight, and theirs is ``p * (1 - lambda)``."""
        v = self.n_vocab
        lam, recall, total = self.cache.predict(hidden)
        self._recall = recall, total
        share = np.divide(lam * (1.0 - ESCAPE_PROBABILITY), total,
                          out=np.zeros_like(lam), where=total > 0)
        out, keep = self._cache_buf[:len(p)], 1.0 - lam
        if self._fused:
            fused.scaled(out, p, keep, v)
        else:
            out[:, :v] = p[:, :v] * keep[:, None]
        r, t = recall.rows, recall.tokens
        out[r, t] = p[r, t] * keep[r] + recall.weights * share[r]
        out[:, v] = p[:, v]
        return out

    def _remember(self, symbols: np.ndarray):
        """The neural cache learns how far to trust itself from the model rows' symbols,
        then keeps their hidden states (those of escaped bytes teach nothing)."""
        recall, total = self._recall
        rows, v = np.arange(len(self._model_rows)), self.n_vocab
        ok = symbols < v
        s = np.where(ok, symbols, 0)
        p_cache = np.divide(recall.at(s), total, out=np.zeros_like(total), where=total > 0)
        p_model = self._model_p[rows, s].astype(np.float64)
        self.cache.learn(p_model, p_cache, ok & (total > 0))
        self.cache.add(rows[ok], symbols[ok])

    def update(self, symbols: np.ndarray, skip: np.ndarray):
        """Learn from step t's symbols, then prepare step t + 1."""
        if not self.ensemble:
            return
        live, v = len(symbols), self.n_vocab
        rows = self._model_rows
        if self.cache is not None and len(rows):
            self._remember(symbols[rows])
        ok = symbols[rows] < v  # an escaped byte teaches nothing
        probs, llm, sets = self._model_p[:, :v], self._llm, self._mset[rows]
        if not ok.all():
            rows, probs, llm, sets = rows[ok], probs[ok], llm[ok], sets[ok]
        if len(rows):
            if self.bias is not None:
                self.bias.learn(probs, symbols[rows])
            self.mixer.learn(probs, llm, self._cand[rows], self._feat[rows], sets, symbols[rows])
        if self.match is not None:  # how often matches of each length come true
            following = self._length > 0
            np.add.at(self._tries, self._bucket[following], 1.0)
            np.add.at(self._hits, self._bucket[following],
                      (self._predicted == symbols)[following].astype(np.float64))
        if self.ngram is not None:
            self.ngram.update(self._hashes[:, :self.orders], symbols)
        self.history.append(symbols)
        hashes = self.history.hashes(live, self._width)
        if self.match is not None:
            h = hashes[:, self.config.match_min - 1]
            prev = self._prev[:live] if self._prev is not None else None
            self.match.update(symbols, h, prev)
            self._prev = h
        nxt = int(np.count_nonzero(self.history.counts > self.history.t))
        if nxt:
            self._context(nxt, hashes[:nxt])
