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
shares its step.  The caches and every step's arithmetic live on the network's
device (numpy's or CuPy's arrays, device.py); the bookkeeping of slots and positions,
and what a step returns (logits, hidden states), are on the host.
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
        self.device = network.device
        s, xp = network.shape, network.device.xp
        self.streams, self.window, self.slide, self.sink = streams, window, slide, sink
        shape = (s.layers, streams, s.kv_heads, window)
        with self.device.scope():
            # keys transposed, (head_dim, window) per head: the score product reads them in order
            self.keys = xp.zeros(shape[:3] + (s.head_dim, window), dtype=np.float32)
            self.key_scale = xp.zeros(shape)
            self.values = xp.zeros(shape + (s.head_dim,), dtype=np.float32)
            self.value_scale = xp.zeros(shape)
        super().__init__(streams, pending)
        self.position = np.zeros(streams, dtype=np.int64)  # of the next token fed
        # The attention's value weights are rounded relative to the largest value scale
        # of a row's own slots.  Without the skip, a block's rows all sit at the same slot,
        # so only rows of other blocks sharing the step (pipeline/batch.py) are masked, and
        # this keeps them from seeing those blocks' slots.  With the skip (pending > 1),
        # format versions 6 and 7 took the largest over every slot of the step, the
        # slots after a row's own too: kept for their streams, which never share a step.
        self.own_slots = pending == 1

    def close(self):
        self.keys = self.values = self.key_scale = self.value_scale = None

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
        with self.device.scope():
            return self._forward(np.array(tokens), np.array(seq), np.array(slot),
                                 np.array(pos), np.array(last))

    def _forward(self, tokens, seq, slot, pos, last) -> np.ndarray:
        net, s, device = self.network, self.network.shape, self.device
        c, sn = (device.put(a) for a in tables.rotation(pos, s.rope_base, s.head_dim))
        at = _Rows(seq, slot, device)
        x = net.embedding[device.put(tokens)]
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
            self.keys[i, at.seq, :, :, at.slot] = kq
            self.key_scale[i, at.seq, :, at.slot] = ks
            self.values[i, at.seq, :, at.slot] = vq
            self.value_scale[i, at.seq, :, at.slot] = vs
            a = self._attend(i, q, at)
            aq, as_ = quantize(a.reshape(n, nq))
            x = x + layer["o"](aq, as_)
            xq, xs = net.norm(x, layer["ffn_norm"])
            gu = layer["gate_up"](xq, xs)
            g, u = gu[:, :s.ffn], gu[:, s.ffn:]
            h = (g * tables.sigmoid(g)) * u
            hq, hs = quantize(h)
            x = x + layer["down"](hq, hs)
        xq, xs = net.norm(x[device.put(last)], net.final_norm)  # logits only where used
        self.hidden = device.get(xq * xs[:, None])
        return device.get(net.output(xq, xs).astype(np.float32))

    def _attend(self, layer: int, q, at: "_Rows"):
        """Softmax attention of each row over its own stream's slots up to its own."""
        s, xp = self.network.shape, self.device.xp
        seq, slot = at.host_seq, at.host_slot
        n, group = len(seq), s.heads // s.kv_heads
        span = int(slot.max()) + 1
        first = int(seq[0])
        if np.array_equal(seq, np.arange(first, first + n)):  # one slice of the cache: no copy
            rows = slice(first, first + n)
        else:
            rows = at.seq
        keys = self.keys[layer, rows, :, :, :span]
        kscale = self.key_scale[layer, rows, :, :span]
        values = self.values[layer, rows, :, :span]
        vscale = self.value_scale[layer, rows, :, :span]
        qq, qs = quantize(q.reshape(n, s.kv_heads, group, s.head_dim))
        qs = qs * (1.0 / np.sqrt(s.head_dim))  # a power of two for SmolLM2's heads of 64
        raw = joined(product(halves(qq, 2), keys), 2)  # (n, kv, group, span), exact
        scores = raw * (qs[..., None] * kscale[:, :, None, :])
        if slot.min() < span - 1:  # a row that must not see the slots after its own
            valid = xp.arange(span)[None, :] <= at.slot[:, None]
            scores = xp.where(valid[:, None, None, :], scores, _MASKED)
            if self.own_slots:  # no scale of a slot after its own sets the rounding
                vscale = xp.where(valid[:, None, :], vscale, 0.0)
        e = tables.attention_weights(scores - scores.max(axis=-1, keepdims=True))
        total = e.sum(axis=-1)  # integers: exact in any order
        top = vscale.max(axis=-1)  # (n, kv)
        weight = xp.rint(e * (vscale / top[..., None])[:, :, None, :])  # integers <= 65535
        high = xp.floor(weight * (1.0 / 256))
        parts = xp.concatenate([high, weight - high * 256], axis=2).astype(np.float32)
        acc = None
        for lo in range(0, span, VALUE_CHUNK):  # each chunk's sums are integers below 2**24
            part = product(parts[..., lo:lo + VALUE_CHUNK], values[:, :, lo:lo + VALUE_CHUNK])
            acc = part.astype(np.float64) if acc is None else acc + part
        acc = acc[:, :, :group] * 256.0 + acc[:, :, group:]
        out = (acc * top[:, :, None, None]) / total[..., None]
        return out.reshape(n, s.heads, s.head_dim)


class _Rows:
    """A step's rows: stream and cache slot of each, on the host (for the step's shape)
    and on the device (for indexing its arrays)."""

    def __init__(self, seq: np.ndarray, slot: np.ndarray, device):
        self.host_seq, self.host_slot = seq, slot
        self.seq, self.slot = device.put(seq), device.put(slot)
