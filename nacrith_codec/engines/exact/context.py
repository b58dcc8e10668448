"""B token streams over the exact network, with the interface of ``engines.interface.Context``.

Each stream has its own key/value cache of ``window`` slots: 8-bit keys and
values (int8) with a float64 scale per slot and head; attention's weights are
16-bit integers (tables.attention_weights), its sums exact (reference.attend).
The network's arithmetic (``Network.ops``) computes each layer's parts; this
module says which, in what order, over which rows and slots.  Positions are
absolute: when a stream slides, its
slots after the first ``sink`` lose ``slide`` tokens and the rest move down,
keys keep the rotation of the position they were written at (RoPE depends on
the distance only), and nothing is recomputed.  Rows of a step are computed
independently of each other, so a stream's logits are the same whatever
shares its step.  The caches and every step's arithmetic live on the network's
device (numpy's or CuPy's arrays, device.py); the bookkeeping of slots and positions,
and what a step returns (logits, hidden states), are on the host.
"""

from __future__ import annotations

import concurrent.futures

import numpy as np

from ..interface import StreamTokens
from ..llamacpp import cores
from ...numerics.blas import one_blas_thread
from ...numerics import tables
from .network import Network
from .reference import Rows, rms_quantized


#: Rows of the output layer computed at once in a step that returns every row's logits
#: (a prefill): its float64 temporaries are about 24 bytes per row and vocabulary entry.
OUTPUT_ROWS = 64


class Context(StreamTokens):
    def __init__(self, network: Network, streams: int, window: int, slide: int, sink: int,
                 threads: int | None = None, pending: int = 1, own_slots: bool | None = None):
        self.model = self.network = network
        self.device = network.device
        s, xp = network.shape, network.device.xp
        self.streams, self.window, self.slide, self.sink = streams, window, slide, sink
        shape = (s.layers, streams, s.kv_heads, window)
        with self.device.scope():
            # keys transposed, (head_dim, window) per head: the score product reads them in order
            self.keys = xp.zeros(shape[:3] + (s.head_dim, window), dtype=np.int8)
            self.key_scale = xp.zeros(shape)
            self.values = xp.zeros(shape + (s.head_dim,), dtype=np.int8)
            self.value_scale = xp.zeros(shape)
        super().__init__(streams, pending)
        self.position = np.zeros(streams, dtype=np.int64)  # of the next token fed
        # The attention's value weights are rounded relative to the largest value scale
        # of a row's own slots.  Without the skip, a block's rows all sit at the same slot
        # when they step one token at a time, so only rows of other blocks sharing the
        # step (pipeline/batch.py) and the rows of a chunk fed at once (a prefill) are
        # masked, and this keeps them from seeing slots after their own.  With the skip,
        # format versions 6 and 7 took the largest over every slot of the step, the
        # slots after a row's own too: kept for their streams, which never share a step
        # or prefill.  Unset: the skip's rule exactly where tokens may wait (pending > 1).
        self.own_slots = pending == 1 if own_slots is None else own_slots
        self.split = threads or cores()  # threads a prefill's streams are shared out to
        self._pool = None

    def close(self):
        self.keys = self.values = self.key_scale = self.value_scale = None
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def reset(self, streams=None):
        super().reset(streams)
        self.position[slice(None) if streams is None else list(streams)] = 0

    def _slide(self, seq: int):
        lo, hi, end = self.sink, self.sink + self.slide, int(self.cached[seq])
        with self.device.scope():  # copies: a GPU's copy kernel may not allow overlap
            for cache in (self.key_scale, self.values, self.value_scale):
                cache[:, seq, :, lo:end - self.slide] = cache[:, seq, :, hi:end].copy()
            self.keys[:, seq, :, :, lo:end - self.slide] = self.keys[:, seq, :, :, hi:end].copy()
        self.cached[seq] -= self.slide

    def room(self, stream: int) -> int:
        """Tokens ``stream`` can be fed in one step and be computed exactly as one at a
        time: a full window slides once before its next token, never within a step."""
        cached = int(self.cached[stream])
        return self.window - cached if cached < self.window else self.slide

    def step(self, rows, every: bool = False) -> np.ndarray:
        """Feed the waiting tokens of streams ``rows`` (ascending); the next-token logits
        after the last token of each, (len(rows), n_vocab) float32, or with ``every``
        after each token fed, stream by stream (a prefill: bit for bit the logits of
        feeding them one step at a time, within ``room``)."""
        seq, slot, pos, tokens, last = [], [], [], [], []
        for stream in rows:
            k = int(self.pending[stream])
            while self.cached[stream] + k > self.window:
                self._slide(stream)
            c, p = int(self.cached[stream]), int(self.position[stream])
            seq += [stream] * k
            slot += range(c, c + k)
            pos += range(p, p + k)
            tokens += self.waiting[stream, :k].tolist()
            last.append(len(tokens) - 1)
            self.cached[stream] += k
            self.position[stream] += k
            self.pending[stream] = 0
        tokens, seq, slot, pos = (np.array(a) for a in (tokens, seq, slot, pos))
        parts = self._parts(rows) if every else [(0, len(rows))]
        if len(parts) == 1:
            with self.device.scope():
                logits, self.hidden = self._forward(
                    tokens, seq, slot, pos, np.arange(len(seq)) if every else np.array(last))
            return logits
        # a prefill's streams in threads of their own, each on one BLAS thread: numpy's
        # elementwise work, most of a pass, runs on one core per thread (rows are
        # independent, so the bits are the same however the streams are shared out)
        cut = np.searchsorted(seq, [rows[i] for i, _ in parts[1:]])
        spans = list(zip(np.r_[0, cut], np.r_[cut, len(seq)]))
        with one_blas_thread():
            done = list(self._pool.map(lambda ab: self._forward(
                *(a[ab[0]:ab[1]] for a in (tokens, seq, slot, pos)), np.arange(ab[1] - ab[0])),
                spans))
        self.hidden = np.concatenate([h for _, h in done])
        return np.concatenate([logits for logits, _ in done])

    def _parts(self, rows) -> list:
        """(first index in ``rows``, end) of the groups of streams a prefill's threads take:
        one group on a device (its own kernels run in parallel) or one core."""
        n = min(len(rows), self.split)
        if n <= 1 or self.device.xp is not np:
            return [(0, len(rows))]
        if self._pool is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(self.split)
        edges = [round(i * len(rows) / n) for i in range(n + 1)]
        return list(zip(edges[:-1], edges[1:]))

    def _forward(self, tokens, seq, slot, pos, last) -> tuple[np.ndarray, np.ndarray]:
        """(logits, final hidden states) of rows ``last`` after feeding ``tokens``."""
        net, s, device = self.network, self.network.shape, self.device
        ops = net.ops
        gemma = s.arch == "gemma3"
        turns = {base: tuple(device.put(a) for a in tables.rotation(pos, base, s.head_dim))
                 for base in {s.rope_base_of(i) for i in range(s.layers)}}
        at = Rows(seq, slot, pos, device)
        x = net.embedding[device.put(tokens)]
        if gemma:
            x = x.astype(np.float64) * net.embed_scale
        n, hd = len(tokens), s.head_dim
        nq, nkv = s.heads * hd, s.kv_heads * hd
        for i, layer in enumerate(net.layers):
            xq, xs = net.norm(x, layer["attn_norm"])
            qkv = layer["qkv"](xq, xs)
            q = qkv[:, :nq].reshape(n, s.heads, hd)
            k = qkv[:, nq:nq + nkv].reshape(n, s.kv_heads, hd)
            v = qkv[:, nq + nkv:].reshape(n, s.kv_heads, hd)
            if gemma:
                q, k = net.normed(q, layer["q_norm"]), net.normed(k, layer["k_norm"])
            cache = (self.keys[i], self.key_scale[i], self.values[i], self.value_scale[i])
            q = ops.store(cache, q, k, v, turns[s.rope_base_of(i)], gemma, at)
            a = ops.attend(cache, q, at, s, s.local_window if s.local(i) else 0, self.sink,
                           self.own_slots)
            aq, as_ = ops.quantized(a.reshape(n, nq))
            y = layer["o"](aq, as_)
            x = x + (net.normed(y, layer["post_attn_norm"]) if gemma else y)
            xq, xs = net.norm(x, layer["ffn_norm"])
            hq, hs = ops.gated(layer["gate_up"](xq, xs), s.ffn, s.arch)
            y = layer["down"](hq, hs)
            x = x + (net.normed(y, layer["post_ffn_norm"]) if gemma else y)
        # logits only where used; the final hidden states as numbers (the neural cache's)
        xq, xs = rms_quantized(x[device.put(last)], net.final_norm, s.eps)
        hidden = device.get(xq * xs[:, None])
        if len(last) <= OUTPUT_ROWS:
            return device.get(net.output(xq, xs, np.float32)), hidden
        logits = np.empty((len(last), s.vocab), dtype=np.float32)
        for lo in range(0, len(last), OUTPUT_ROWS):  # rows are independent: bounded memory
            part = slice(lo, lo + OUTPUT_ROWS)
            logits[part] = device.get(net.output(xq[part], xs[part], np.float32))
        return logits, hidden
