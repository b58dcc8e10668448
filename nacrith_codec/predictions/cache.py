"""A neural cache (Grave et al. 2016): the block's own past, recalled by the model's hidden state.

Each coded token leaves an entry: the model's final hidden state where it was
predicted (the input of the output layer) and the token itself.  A row's cache
distribution is

    p_cache(w) = sum_{entries j with token w} e**(theta * (cos(h, h_j) - 1)) / (the sum over all j)

over the last ``size`` entries of every stream of the block (a ring: its memory is
fixed), so a stream recalls what the other streams of its block have seen and what
slid out of its own window.  The coded probabilities are

    p = (1 - lambda) * p_ensemble + lambda * p_cache

where lambda is the average of a grid of weights (LAMBDAS) under their posterior
given the block so far (from a prior of mean 0.05: a cold cache is trusted little), kept per bucket of the row's best similarity: a Bayesian
mixture that needs no logarithm.  Reset with every block.

An entry is the hidden state quantized to 8-bit integers per vector, projected onto
PROJECTED fixed random signs (the Johnson-Lindenstrauss way: cosines are kept, the
cache reads a fifth of the bytes; on alice29 1.0500 bpb against 1.0481 with all 576
values, for a product per step 4.5 times smaller) and quantized to 8 bits again.
Every operation is exact or correctly rounded: products of integers whose sums stay
below 2**24 (exact in float32 whatever the BLAS), squared norms that are integer
sums, cosines of one square root and one division, e**x from arith's table, and sums
over entries that are sums of integers.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from . import arith, fused
from ..numerics.blas import one_blas_thread

LAMBDAS = np.arange(17) / 20.0  # 0 .. 0.8: the cache weights the mixture averages over
PRIOR = 0.5 ** np.arange(len(LAMBDAS)) / (2.0 - 0.5 ** (len(LAMBDAS) - 1))  # mean 0.05
SHARE = 1e-4  # of every bucket's posterior spread back over the grid each time (it keeps adapting)
EDGES = np.array([0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95])  # buckets of the best cosine
LEVELS = 127  # hidden states become integers in -127..127, per vector
MAX_DIM = 1024  # 127 * 1024 < 2**24: the projection's sums exact in float32
PROJECTED = 128  # values of an entry (127 * 127 * 128 < 2**24: exact cosines' products)




@functools.lru_cache(maxsize=None)
def projection(dim: int) -> np.ndarray:
    """(dim, PROJECTED) signs +-1 (float32), the same on every machine: bits of
    splitmix64 (integer arithmetic modulo 2**64) of each entry's index."""
    z = np.arange(dim * PROJECTED, dtype=np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    for shift, factor in ((30, 0xBF58476D1CE4E5B9), (27, 0x94D049BB133111EB)):
        z = (z ^ (z >> np.uint64(shift))) * np.uint64(factor)
    z ^= z >> np.uint64(31)
    return np.where(z >> np.uint64(63), -1.0, 1.0).astype(np.float32).reshape(dim, PROJECTED)


def _levels(x: np.ndarray) -> np.ndarray:
    """The rows of ``x`` scaled to integers in -LEVELS..LEVELS (float64)."""
    x = x.astype(np.float64)
    top = np.abs(x).max(axis=1, keepdims=True)
    return np.rint(x * (LEVELS / np.where(top > 0, top, 1.0)))


def quantized(hidden: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(the entries of the rows of ``hidden``: integer-valued float32 vectors of PROJECTED
    values, and their lengths)."""
    q = _levels(hidden).astype(np.float32)
    with one_blas_thread():
        p = _levels(q @ projection(hidden.shape[1]))  # integers below 2**24: exact
    return p.astype(np.float32), np.sqrt(np.einsum("rd,rd->r", p, p))  # sums of integers


@dataclasses.dataclass(frozen=True)
class Recall:
    """A step's cache distributions, sparse: ``weights[k]`` (an integer, as float64) for
    token ``tokens[k]`` of row ``rows[k]``, one entry for each (row, token) the cache
    holds anything for, in row then token order; every other token's weight is 0."""

    rows: np.ndarray
    tokens: np.ndarray
    weights: np.ndarray
    n_vocab: int

    def dense(self, n_rows: int) -> np.ndarray:
        """The weights as (n_rows, V)."""
        out = np.zeros((n_rows, self.n_vocab))
        out[self.rows, self.tokens] = self.weights
        return out

    def at(self, symbols: np.ndarray) -> np.ndarray:
        """The weight of ``symbols[r]`` in row r, for each row."""
        keys = self.rows * self.n_vocab + self.tokens  # ascending
        wanted = np.arange(len(symbols)) * self.n_vocab + symbols
        i = np.minimum(np.searchsorted(keys, wanted), max(len(keys) - 1, 0))
        found = (keys[i] == wanted) if len(keys) else np.zeros(len(symbols), bool)
        return np.where(found, self.weights[i] if len(keys) else 0.0, 0.0)


class NeuralCache:
    def __init__(self, size: int, dim: int, theta: int, n_vocab: int):
        if dim > MAX_DIM:
            raise ValueError(f"the neural cache takes hidden states of up to {MAX_DIM} values")
        self.size, self.theta, self.n_vocab = size, float(theta), n_vocab
        self.keys = np.zeros((size, PROJECTED), dtype=np.int8)
        self.lengths = np.zeros(size, dtype=np.float64)
        self.tokens = np.zeros(size, dtype=np.int64)
        self.filled = self.next = 0
        self.posterior = np.tile(PRIOR, (len(EDGES) + 1, 1))
        self._bits = arith.exp_bits(size)

    def nbytes(self) -> int:
        return self.keys.nbytes + self.lengths.nbytes + self.tokens.nbytes

    def predict(self, hidden: np.ndarray):
        """(lambda per row, the rows' cache distributions as integer weights (a Recall),
        their totals); a row with nothing similar enough in the cache gets lambda 0."""
        rows, n = len(hidden), self.filled
        q, length = quantized(hidden)
        self._q, self._length = q, length
        if n == 0:
            self._bucket = np.zeros(rows, dtype=np.int64)
            none = np.zeros(0, dtype=np.int64)
            return np.zeros(rows), Recall(none, none, np.zeros(0), self.n_vocab), np.zeros(rows)
        if fused.available():  # the same numbers in one compiled pass
            best, row, entry, x = fused.similar(q, length, self.keys[:n], self.lengths[:n],
                                                self.theta, arith.EXP_MIN)
        else:
            with one_blas_thread():  # integers below 2**24: exact
                dots = (q @ self.keys[:n].T.astype(np.float32)).astype(np.float64)
            scale = length[:, None] * self.lengths[None, :n]
            cos = dots / np.where(scale > 0, scale, 1.0)
            best = cos.max(axis=1)
            x = (cos - 1.0) * self.theta
            row, entry = np.nonzero(x > arith.EXP_MIN)  # the others' terms are 0
            x = x[row, entry]
        self._bucket = np.searchsorted(EDGES, best, side="right")
        terms = arith.exp_terms(x, self._bits)
        keys, where = np.unique(row * self.n_vocab + self.tokens[entry], return_inverse=True)
        # integers below 2**53, exact in any order (bincount of nothing is int64: astype)
        weights = np.bincount(where.ravel(), terms, len(keys)).astype(np.float64, copy=False)
        total = np.bincount(row, terms, rows).astype(np.float64, copy=False)
        lam = arith.weighted(self.posterior[self._bucket][:, None, :], LAMBDAS[None, :])[:, 0]
        recall = Recall(keys // self.n_vocab, keys % self.n_vocab, weights, self.n_vocab)
        return np.where(total > 0, lam, 0.0), recall, total

    def learn(self, p_ensemble: np.ndarray, p_cache: np.ndarray, known: np.ndarray):
        """Update each row's bucket posterior with the coded symbol's probability under
        each weight of the grid (rows of ``known``: the cache had something to say)."""
        for r in np.flatnonzero(known):  # in row order: a bucket may see several rows
            k = self._bucket[r]
            post = self.posterior[k] * ((1.0 - LAMBDAS) * p_ensemble[r] + LAMBDAS * p_cache[r])
            total = arith.row_sum(post[:, None])[0]
            if not total > 1e-300:  # the symbol had (next to) no probability: nothing learnt
                continue
            self.posterior[k] = (1.0 - SHARE) * (post / total) + SHARE / len(LAMBDAS)

    def add(self, rows: np.ndarray, symbols: np.ndarray):
        """Remember rows ``rows`` of the last ``predict`` (their hidden states) with the
        symbols that followed, oldest entries first out once the ring is full."""
        for r, symbol in zip(rows, symbols):
            at = self.next
            self.keys[at], self.lengths[at], self.tokens[at] = self._q[r], self._length[r], symbol
            self.next = (at + 1) % self.size
            self.filled = min(self.filled + 1, self.size)
