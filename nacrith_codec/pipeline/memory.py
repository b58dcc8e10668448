"""The memory a stream's decoder needs, known from its header before anything is allocated.

A header's parameters decide what a decoder allocates: the model's KV cache
(``streams * window`` tokens, about 23 KB each for SmolLM2 on llama.cpp, 47.5 KB on
the exact engine, whose attention also holds a step's scores), the N-gram and
match tables, vocabulary-wide buffers per stream, and a block's bytes.  A
decoder works that out from the header and the model's shape first and
refuses, with a MemoryLimitError saying how to raise the limit, a stream that
needs more than ``memlimit`` (as xz and zstd refuse a stream whose dictionary
or window is over theirs).  The limit applies to each process that decodes
(``workers`` processes have one each; the exact engine's worker threads share their
process's, and fewer of them run where all would not fit, pipeline/batch.py).

    memlimit=None   NACRITH_MEMLIMIT from the environment, else DEFAULT_LIMIT
    memlimit=0      no limit
"""

from __future__ import annotations

import os
import re

from ..errors import MemoryLimitError
from ..predictions.cache import MAX_DIM, PROJECTED
from ..predictions.ngram import SLOTS
from ..predictions.predictor import MATCH_BITS

#: The default limit: every stream the defaults write needs about 310 MiB (274 without the
#: neural cache), and
#: 1 GiB holds 8 streams of a 4,096-token window, 16 of 2,048 or 32 of 1,024.
DEFAULT_LIMIT = 1 << 30
ENV = "NACRITH_MEMLIMIT"
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_ENGINE_BASE = 16 << 20  # llama.cpp's compute buffers and the like (measured about 4 MiB)
_VOCAB_ROWS = 8  # vocabulary-wide arrays per stream of a step (buffers and temporaries)
_EXACT_VOCAB_ROWS = 16  # and float64 ones with the exact softmax's table (version 6)


def parse_size(text: str) -> int:
    """``"1GiB"``, ``"512M"``, ``"2g"``, ``"1000000"`` -> bytes (binary units); ``"0"`` or
    ``"max"``: no limit (0)."""
    text = str(text).strip().lower()
    if text in ("max", "none"):
        return 0
    match = re.fullmatch(r"(\d+)\s*([kmgt]?)(?:i?b)?", text)
    if not match:
        raise ValueError(f"invalid memory limit {text!r} (bytes, or a number with KiB, MiB, "
                         "GiB or TiB; 0 or max for none)")
    return int(match.group(1)) * _UNITS[match.group(2)]


def resolve(memlimit=None) -> int:
    """The limit in bytes (0: none) from an option, else the environment, else the default."""
    if memlimit is None:
        memlimit = os.environ.get(ENV, DEFAULT_LIMIT)
    if isinstance(memlimit, str):
        return parse_size(memlimit)
    if memlimit < 0:
        raise ValueError("memlimit must be 0 (no limit) or a number of bytes")
    return int(memlimit)


def needed(config, n_vocab: int, kv_bytes_per_token: int, score_bytes: int = 0,
           n_embd: int = MAX_DIM) -> int:
    """Bytes a decoder of streams with ``config`` allocates at most (an upper bound);
    ``score_bytes``: what the engine holds per row of a step and token of its window,
    ``n_embd``: the values of the model's hidden state (the neural cache's entries)."""
    c = config
    rows = c.streams * c.max_pending
    engine = c.streams * c.window * kv_bytes_per_token + _ENGINE_BASE
    engine += rows * c.window * score_bytes
    engine += 4 * n_vocab * max(8, c.streams * c.max_pending)  # logits of a step
    vocab = _VOCAB_ROWS * c.streams * (n_vocab + 1) * c.float_bits // 8
    if c.exact:
        vocab += _EXACT_VOCAB_ROWS * c.streams * (n_vocab + 1) * 8
    tables = 0
    if c.ensemble:
        tables += (1 << c.ngram_bits) * (4 + 8 * SLOTS) if c.ngram_order else 0
        tables += (1 << MATCH_BITS) * 8 if c.match_min else 0  # int64 entries
        tables += 4 * n_vocab * 8  # bias head, mixer
    if c.cache_size:  # entries (8-bit keys, length, token), a step's similarities, weights
        tables += c.cache_size * (PROJECTED + 16 + 48 * c.streams) + 8 * n_embd * c.streams
        tables += c.streams * c.cache_size * 24 + c.streams * (n_vocab + 1) * c.float_bits // 8
    block = 16 * c.block_size  # the record, its parts, the output, the symbols' history
    return engine + vocab + tables + block


#: Tokens of each stream an encoder's forward pass computes at once with the exact engine
#: (pipeline/schedule.run_prefilled): 8 streams x 64 rows per product run the model's
#: GEMMs near their best rate here, and a 1,024-token window's slide of 256 holds 4 passes.
MAX_CHUNK = 64
_PREFILL_ROW = 64 << 10  # a pass's activations per row, beside its logits (measured 40 KiB)


def prefill_chunk(config, n_vocab: int, kv_bytes_per_token: int, limit: int,
                  score_bytes: int = 0, n_embd: int = MAX_DIM) -> int:
    """Tokens per stream in each of an encoder's forward passes: MAX_CHUNK, or fewer where
    the pass's logits and activations (streams x chunk rows) would take the process over
    ``limit`` (0: none) beside what coding the block needs anyway (at least 1: a pass of
    one token per stream is what a decoder does)."""
    if not limit:
        return MAX_CHUNK
    spare = limit - needed(config, n_vocab, kv_bytes_per_token, score_bytes, n_embd)
    per_row = 4 * n_vocab + _PREFILL_ROW + config.window * score_bytes // config.streams
    return max(1, min(MAX_CHUNK, spare // (config.streams * per_row)))


def _mib(nbytes: int) -> str:
    return f"{nbytes / (1 << 20):,.0f} MiB" if nbytes >= 1 << 20 else f"{nbytes:,} bytes"


def check(config, n_vocab: int, kv_bytes_per_token: int, limit: int, score_bytes: int = 0,
          n_embd: int = MAX_DIM, blocks: int = 1) -> int:
    """The bytes needed to code ``blocks`` blocks at once in one process; MemoryLimitError
    when over ``limit`` (0: none), nothing allocated."""
    need = blocks * needed(config, n_vocab, kv_bytes_per_token, score_bytes, n_embd)
    if limit and need > limit:
        at_once = f", {blocks} blocks at once" if blocks > 1 else ""
        raise MemoryLimitError(
            f"decoding this stream needs about {_mib(need)} ({config.streams} streams x "
            f"{config.window} tokens of model context, {config.block_size:,}-byte blocks"
            f"{at_once}), "
            f"over the memory limit of {_mib(limit)}; if you trust the stream, raise the "
            f"limit: memlimit=... in Python, --memlimit SIZE on the command line, or "
            f"{ENV}=SIZE (for example {ENV}={-(-need // (1 << 30))}GiB; 0 for no limit)")
    return need
