"""Online mixer: the model's logits and the sparse predictors combined in the log domain.

For a row (one stream at one step) with weight set c chosen by a small
context, the mixed logit of token v is

    z(v) = a[c] * llm(v) + bias(v) + sum_j w[c, j] * f_j(v)

where llm are the model's logits, bias the bias head's offsets and f_j the
features of the candidate tokens proposed by the N-gram and match models
(zero for every other token).  p = softmax(z) (the predictor's, predictor.py): a product of experts whose
exponents are learned online by gradient descent on the coded symbol's
cross-entropy, d/dw[c, j] = E_p[f_j] - f_j(symbol) and d/da[c] = E_p[llm] -
llm(symbol).  Each feature belongs to one predictor, whose candidates are
distinct, so E_p[f_j] is a sum over the candidates only; the only full-vocabulary
work is one softmax and one dot product per row, for all rows of a step at once.
"""

from __future__ import annotations

import numpy as np

from . import arith, fused


class Mixer:
    def __init__(self, n_vocab: int, sets: int, features: int, rate: float, init_w,
                 exact: int = 0):
        self.n_vocab, self.rate, self.exact = n_vocab, rate, exact
        self._fused = bool(exact) and fused.available()  # compiled passes, the same bits
        self.a = np.ones(sets, dtype=np.float64)
        self.w = np.tile(np.asarray(init_w, dtype=np.float64), (sets, 1))

    def mix(self, out, llm, bias, cand, feat, sets) -> np.ndarray:
        """The mixed logits z, written into the first V columns of ``out`` (S, >= V), a
        C-contiguous float32 or float64 array, and returned (the predictor's softmax
        turns them into probabilities).

        llm (S, V) logits or None (rows coded without the model), bias (V,) or
        None, cand (S, C) candidate tokens (-1: none), feat (S, C, F), sets (S,).
        """
        rows, width = out.shape
        z = out[:, :self.n_vocab]  # the arithmetic is in out's precision (float_bits)
        if llm is not None and self._fused:
            fused.mix(z, llm, self.a[sets], bias)
        elif llm is not None:
            np.multiply(llm, self.a[sets][:, None], out=z, dtype=z.dtype)
            if bias is not None:
                np.add(z, bias, out=z, dtype=z.dtype)
        else:
            z[:] = bias if bias is not None else 0.0
        add = (arith.weighted(feat, self.w[sets]) if self.exact
               else np.einsum("scf,sf->sc", feat, self.w[sets]))
        ok = cand >= 0
        np.add.at(out.reshape(-1), (np.arange(rows)[:, None] * width + cand)[ok], add[ok])
        return out

    def learn(self, probs, llm, cand, feat, sets, symbols):
        """One gradient step from rows that coded ``symbols`` (all below V) with ``probs``.

        The model's term uses its raw logits: the softmax's normalization
        cancels in E_p[llm] - llm(symbol).
        """
        if not self.rate:
            return
        rows = np.arange(len(symbols))
        ok = cand >= 0
        p_cand = np.where(ok, probs[rows[:, None], np.maximum(cand, 0)], 0.0)
        hit = (cand == symbols[:, None]) & ok
        exact = self.exact
        grad_w = (arith.gradient(p_cand - hit, feat) if exact
                  else np.einsum("sc,scf->sf", p_cand - hit, feat))
        np.subtract.at(self.w, sets, self.rate * grad_w)
        if llm is not None:
            mean = ((fused if self._fused else arith).expectation(probs, llm) if exact
                    else np.einsum("sv,sv->s", probs, llm))
            grad_a = mean - llm[rows, symbols]
            np.subtract.at(self.a, sets, self.rate * grad_a)
