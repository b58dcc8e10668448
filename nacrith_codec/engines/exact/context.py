"""B token streams over the exact network, with the interface of ``engines.interface.Context``.

Each stream has its own key/value cache of ``window`` slots: 8-bit keys and
values (int8) with a float64 scale per slot and head.  Attention weights
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

import concurrent.futures

import numpy as np

from ..interface import StreamTokens
from ..llamacpp import cores
from ...numerics.blas import one_blas_thread
from ...numerics import kernels, tables
from .network import CACHE_LEVELS, Network, halves, joined, product, quantize, rope

_MASKED = -1e300
VALUE_CHUNK = (1 << 24) // (255 * 127)  # slots per exact float32 value product (518)


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
        gemma = s.arch == "gemma3"
        turns = {base: tuple(device.put(a) for a in tables.rotation(pos, base, s.head_dim))
                 for base in {s.rope_base_of(i) for i in range(s.layers)}}
        at = _Rows(seq, slot, pos, device)
        x = net.embedding[device.put(tokens)]
        if gemma:
            x = x.astype(np.float64) * net.embed_scale
        n, hd = len(tokens), s.head_dim
        nq, nkv = s.heads * hd, s.kv_heads * hd
        for i, layer in enumerate(net.layers):
            c, sn = turns[s.rope_base_of(i)]
            xq, xs = net.norm(x, layer["attn_norm"])
            qkv = layer["qkv"](xq, xs)
            q = qkv[:, :nq].reshape(n, s.heads, hd)
            k = qkv[:, nq:nq + nkv].reshape(n, s.kv_heads, hd)
            v = qkv[:, nq + nkv:].reshape(n, s.kv_heads, hd)
            if gemma:
                q, k = net.normed(q, layer["q_norm"]), net.normed(k, layer["k_norm"])
            if net.compiled:  # the same numbers, compiled
                q = kernels.rope_store(q, k, v, c, sn, gemma, self.keys[i], self.key_scale[i],
                                       self.values[i], self.value_scale[i], at.host_seq,
                                       at.host_slot)
            else:
                q, k = rope(q, c, sn, gemma), rope(k, c, sn, gemma)
                kq, ks = quantize(k, CACHE_LEVELS)
                vq, vs = quantize(v, CACHE_LEVELS)
                self.keys[i, at.seq, :, :, at.slot] = kq
                self.key_scale[i, at.seq, :, at.slot] = ks
                self.values[i, at.seq, :, at.slot] = vq
                self.value_scale[i, at.seq, :, at.slot] = vs
            a = self._attend(i, q, at)
            aq, as_ = net.quantized(a.reshape(n, nq))
            y = layer["o"](aq, as_)
            x = x + (net.normed(y, layer["post_attn_norm"]) if gemma else y)
            xq, xs = net.norm(x, layer["ffn_norm"])
            hq, hs = net.gated(layer["gate_up"](xq, xs))
            y = layer["down"](hq, hs)
            x = x + (net.normed(y, layer["post_ffn_norm"]) if gemma else y)
        xq, xs = net.norm(x[device.put(last)], net.final_norm, operand=False)  # where used
        hidden = device.get(xq * xs[:, None])
        if len(last) <= OUTPUT_ROWS:
            return device.get(net.output(xq, xs).astype(np.float32)), hidden
        logits = np.empty((len(last), s.vocab), dtype=np.float32)
        for lo in range(0, len(last), OUTPUT_ROWS):  # rows are independent: bounded memory
            part = slice(lo, lo + OUTPUT_ROWS)
            logits[part] = device.get(net.output(xq[part], xs[part]).astype(np.float32))
        return logits, hidden

    def _attend(self, layer: int, q, at: "_Rows"):
        """Softmax attention of each row over its own stream's slots up to its own.  Rows of
        one stream each (a step) read their streams' slots in one batched product; a run of
        rows of one stream (a prefill) reads that stream's slots in place, its rows as one
        product.  Either way every row's numbers are the same: the products are exact
        integers, and every other operation is elementwise or an integer sum."""
        s, xp = self.network.shape, self.device.xp
        seq, slot = at.host_seq, at.host_slot
        n, group = len(seq), s.heads // s.kv_heads
        window = s.local_window if s.local(layer) else 0
        if self.network.compiled and self.own_slots:  # the same numbers, compiled
            return kernels.attend(q, self.keys[layer], self.key_scale[layer], self.values[layer],
                                  self.value_scale[layer], seq, slot, at.host_pos, group,
                                  1.0 / np.sqrt(s.head_dim), window, self.sink)
        qq, qs = quantize(q.reshape(n, s.kv_heads, group, s.head_dim))
        qs = qs * (1.0 / np.sqrt(s.head_dim))  # a power of two for SmolLM2's heads of 64
        if at.runs is None or not self.own_slots:  # (the skip's rule needs the step's span)
            span = int(slot.max()) + 1
            first = int(seq[0])
            if np.array_equal(seq, np.arange(first, first + n)):  # one slice: no copy
                rows = slice(first, first + n)
            else:
                rows = at.seq
            keys = self.keys[layer, rows, :, :, :span].astype(np.float32)
            values = self.values[layer, rows, :, :span].astype(np.float32)
            raw = joined(product(halves(qq, 2), keys), 2)  # (n, kv, group, span), exact
            weights = self._weights(raw, qs, self.key_scale[layer, rows, :, :span],
                                    self.value_scale[layer, rows, :, :span], at, slice(None),
                                    span, window)
            return self._mixed(weights, lambda c, lo, hi: product(c, values[:, :, lo:hi]),
                               span, group)
        out = xp.empty((n, s.heads, s.head_dim))
        for stream, lo, hi in at.runs:
            m, span = hi - lo, int(slot[hi - 1]) + 1  # a run's slots ascend
            keys = self.keys[layer, stream, :, :, :span].astype(np.float32)  # (kv, d, span)
            values = self.values[layer, stream, :, :span].astype(np.float32)
            h = halves(qq[lo:hi], 2)  # (m, kv, 2 group, head_dim) -> one product per head
            r = product(h.transpose(1, 0, 2, 3).reshape(s.kv_heads, -1, s.head_dim), keys)
            raw = joined(r.reshape(s.kv_heads, m, 2 * group, span).transpose(1, 0, 2, 3), 2)
            weights = self._weights(raw, qs[lo:hi], self.key_scale[layer, stream, None, :, :span],
                                    self.value_scale[layer, stream, None, :, :span],
                                    at, slice(lo, hi), span, window)

            def part(c, a, b, m=m, values=values):  # (m, kv, 2 group, slots) by (kv, slots, d)
                flat = c.transpose(1, 0, 2, 3).reshape(s.kv_heads, -1, b - a)
                y = product(flat, values[:, a:b])
                return y.reshape(s.kv_heads, m, 2 * group, -1).transpose(1, 0, 2, 3)
            out[lo:hi] = self._mixed(weights, part, span, group)
        return out

    def _weights(self, raw, qs, kscale, vscale, at: "_Rows", rows: slice, span: int,
                 window: int):
        """Scores of ``at``'s rows ``rows`` -> (integer value weights in two 8-bit halves,
        the value scale each is relative to, the weights' total): elementwise, and integer
        sums.  A row sees the slots up to its own, and with a local ``window`` only those
        of its last ``window`` positions (the sink's slots hold positions 0 .. sink - 1)."""
        xp = self.device.xp
        scores = raw * (qs[..., None] * kscale[:, :, None, :])
        row_slot = at.slot[rows]
        local = window and int(at.host_pos[rows].max()) >= window
        if at.host_slot[rows].min() < span - 1 or local:  # a row must not see some slots
            slots = xp.arange(span)[None, :]
            valid = slots <= row_slot[:, None]
            if local:
                first = xp.where(slots < self.sink, at.pos[rows][:, None], row_slot[:, None])
                valid &= slots > first - window
            scores = xp.where(valid[:, None, None, :], scores, _MASKED)
            if self.own_slots:  # no scale of a slot after its own sets the rounding
                vscale = xp.where(valid[:, None, :], vscale, 0.0)
        e = tables.attention_weights(scores - scores.max(axis=-1, keepdims=True))
        total = e.sum(axis=-1)  # integers: exact in any order
        top = vscale.max(axis=-1)  # (n, kv)
        weight = xp.rint(e * (vscale / top[..., None])[:, :, None, :])  # integers <= 65535
        high = xp.floor(weight * (1.0 / 256))
        parts = xp.concatenate([high, weight - high * 256], axis=2).astype(np.float32)
        return parts, top, total

    def _mixed(self, weights, by_values, span, group):
        """The values weighted: ``by_values(parts, lo, hi)`` multiplies the weights' parts of
        slots lo..hi by those slots' values, in chunks of slots whose sums are integers
        below 2**24, added in float64."""
        parts, top, total = weights
        acc = None
        for lo in range(0, span, VALUE_CHUNK):  # each chunk's sums are integers below 2**24
            hi = min(lo + VALUE_CHUNK, span)
            part = by_values(parts[..., lo:hi], lo, hi)
            acc = part.astype(np.float64) if acc is None else acc + part
        acc = acc[:, :, :group] * 256.0 + acc[:, :, group:]
        out = (acc * top[:, :, None, None]) / total[..., None]
        return out.reshape(len(out), -1, acc.shape[-1])


class _Rows:
    """A step's rows: stream, cache slot and position of each, on the host (for the step's
    shape) and on the device (for indexing its arrays); ``runs``, where a stream has more
    than one row, the (stream, first row, end) of each stream's rows (they are contiguous)."""

    def __init__(self, seq: np.ndarray, slot: np.ndarray, pos: np.ndarray, device):
        self.host_seq, self.host_slot, self.host_pos = seq, slot, pos
        self.seq, self.slot, self.pos = device.put(seq), device.put(slot), device.put(pos)
        self.runs = None
        if len(seq) > 1 and (seq[1:] == seq[:-1]).any():
            starts = np.flatnonzero(np.r_[True, seq[1:] != seq[:-1]])
            ends = np.r_[starts[1:], len(seq)]
            self.runs = [(int(seq[a]), int(a), int(b)) for a, b in zip(starts, ends)]
