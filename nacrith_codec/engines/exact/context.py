"""B token streams over the exact network, with the interface of ``engines.interface.Context``.

Each stream has its own key/value cache of ``window`` slots: 8-bit keys and
values (float32) with a float64 scale per slot and head.  Attention weights
are 16-bit integers (tables.attention_weights), split into two 8-bit halves, so the value product sums
at most ``VALUE_CHUNK`` slots of 255 x 127 in float32 (below 2**24, exact);
the chunks and halves are added in float64.  Positions are absolute: when a stream slides, its
slots after the first ``sink`` lose ``slide`` tokens and the rest move down,
keys keep the rotation of the position they were written at (RoPE depends on
the distance only), and nothing is recomputed.  Rows of a step are computed
independently of each other, so a stream's logits are the same whatever
shares its step.
"""

from __future__ import annotations

import numpy as np

from ..interface import StreamTokens
from ...numerics import tables
from .network import CACHE_LEVELS, Network, halves, joined, product, quantize, rope

_MASKED = -1e300
VALUE_CHUNK = (1 << 24) // (255 * 127)  # slots per exact float32 value product (518)


class Context(StreamTokens):
    def __init__(self, network: Network, streams: int, window: int, slide: int, sink: int,
                 threads: int | None = None, pending: int = 1):
        self.model = self.network = network
        s = network.shape
        self.streams, self.window, self.slide, self.sink = streams, window, slide, sink
        shape = (s.layers, streams, s.kv_heads, window)
        # keys transposed, (head_dim, window) per head: the score product reads them in order
        self.keys = np.zeros(shape[:3] + (s.head_dim, window), dtype=np.float32)
        self.key_scale = np.zeros(shape)
        self.values = np.zeros(shape + (s.head_dim,), dtype=np.float32)
        self.value_scale = np.zeros(shape)
        super().__init__(streams, pending)
        self.position = np.zeros(streams, dtype=np.int64)  # of the next token fed

    def close(self):
        self.keys = self.values = self.key_scale = self.value_scale = None

    def reset(self):
        super().reset()
        self.position[:] = 0

    def _slide(self, seq: int):
        lo, hi, end = self.sink, self.sink + self.slide, int(self.cached[seq])
        for cache in (self.key_scale, self.values, self.value_scale):
            cache[:, seq, :, lo:end - self.slide] = cache[:, seq, :, hi:end]
        self.keys[:, seq, :, :, lo:end - self.slide] = self.keys[:, seq, :, :, hi:end]
        self.cached[seq] -= self.slide

    def step(self, rows) -> np.ndarray:
        """Feed the waiting tokens of streams ``rows`` (ascending); the next-token logits
        after the last token of each, (len(rows), n_vocab) float32."""
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
        return self._forward(np.array(tokens), np.array(seq), np.array(slot), np.array(pos),
                             np.array(last))

    def _forward(self, tokens, seq, slot, pos, last) -> np.ndarray:
        net, s = self.network, self.network.shape
        x = net.embedding[tokens]
        c, sn = tables.rotation(pos, s.rope_base, s.head_dim)
        n, hd = len(tokens), s.head_dim
        nq, nkv = s.heads * hd, s.kv_heads * hd
        for i, layer in enumerate(net.layers):
            xq, xs = net.norm(x, layer["attn_norm"])
            qkv = layer["qkv"](xq, xs)
            q = rope(qkv[:, :nq].reshape(n, s.heads, hd), c, sn)
            k = rope(qkv[:, nq:nq + nkv].reshape(n, s.kv_heads, hd), c, sn)
            v = qkv[:, nq + nkv:].reshape(n, s.kv_heads, hd)
            kq, ks = quantize(k, CACHE_LEVELS)
            vq, vs = quantize(v, CACHE_LEVELS)
            self.keys[i, seq, :, :, slot] = kq
            self.key_scale[i, seq, :, slot] = ks
            self.values[i, seq, :, slot] = vq
            self.value_scale[i, seq, :, slot] = vs
            a = self._attend(i, q, seq, slot)
            aq, as_ = quantize(a.reshape(n, nq))
            x = x + layer["o"](aq, as_)
            xq, xs = net.norm(x, layer["ffn_norm"])
            gu = layer["gate_up"](xq, xs)
            g, u = gu[:, :s.ffn], gu[:, s.ffn:]
            h = (g * tables.sigmoid(g)) * u
            hq, hs = quantize(h)
            x = x + layer["down"](hq, hs)
        xq, xs = net.norm(x[last], net.final_norm)  # logits only where they are used
        self.hidden = xq * xs[:, None]
        return net.output(xq, xs).astype(np.float32)

    def _attend(self, layer: int, q, seq, slot) -> np.ndarray:
        """Softmax attention of each row over its own stream's slots up to its own."""
        s = self.network.shape
        n, group = len(seq), s.heads // s.kv_heads
        span = int(slot.max()) + 1
        first = int(seq[0])
        if np.array_equal(seq, np.arange(first, first + n)):  # one slice of the cache: no copy
            rows = slice(first, first + n)
            keys = self.keys[layer, rows, :, :, :span]
            kscale = self.key_scale[layer, rows, :, :span]
            values = self.values[layer, rows, :, :span]
            vscale = self.value_scale[layer, rows, :, :span]
        else:
            keys = self.keys[layer, seq, :, :, :span]
            kscale = self.key_scale[layer, seq, :, :span]
            values = self.values[layer, seq, :, :span]
            vscale = self.value_scale[layer, seq, :, :span]
        qq, qs = quantize(q.reshape(n, s.kv_heads, group, s.head_dim))
        qs = qs * (1.0 / np.sqrt(s.head_dim))  # a power of two for SmolLM2's heads of 64
        raw = joined(product(halves(qq, 2), keys), 2)  # (n, kv, group, span), exact
        scores = raw * (qs[..., None] * kscale[:, :, None, :])
        if slot.min() < span - 1:  # a row that must not see the slots after its own
            valid = np.arange(span)[None, :] <= slot[:, None]
            scores = np.where(valid[:, None, None, :], scores, _MASKED)
        e = tables.attention_weights(scores - scores.max(axis=-1, keepdims=True))
        total = e.sum(axis=-1)  # integers: exact in any order
        top = vscale.max(axis=-1)  # (n, kv)
        weight = np.rint(e * (vscale / top[..., None])[:, :, None, :])  # integers <= 65535
        high = np.floor(weight * (1.0 / 256))
        parts = np.concatenate([high, weight - high * 256], axis=2).astype(np.float32)
        acc = None
        for lo in range(0, span, VALUE_CHUNK):  # each chunk's sums are integers below 2**24
            part = product(parts[..., lo:lo + VALUE_CHUNK], values[:, :, lo:lo + VALUE_CHUNK])
            acc = part.astype(np.float64) if acc is None else acc + part
        acc = acc[:, :, :group] * 256.0 + acc[:, :, group:]
        out = (acc * top[:, :, None, None]) / total[..., None]
        return out.reshape(n, s.heads, s.head_dim)
