"""Every setting that changes the compressed bytes, in one object.

The container serializes a ``CodecConfig`` into the stream header and the
decoder rebuilds itself from it, so nothing the decoder needs travels outside
the stream.  Settings that change only speed (threads, progress) are not here.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .errors import FormatError

#: Largest values a header may declare.  Checked before anything is allocated,
#: so a hostile header cannot make the decoder reserve unbounded memory.
MAX_BLOCK_SIZE = 16 << 20
MAX_STREAMS = 64
MAX_WINDOW = 8192  # SmolLM2's training context; larger models can lift it in a new version
#: The settings that switch every online predictor off: the model's probabilities only.
MODEL_ALONE = dict(ngram_order=0, match_min=0, bias_rate_ppm=0, mixer_rate_ppm=0, skip_ppm=0,
                   cache_size=0)
MAX_NGRAM_ORDER = 8
#: The skip's threshold when it is switched on.  Off by default: with streams in
#: lockstep a skipped row barely shortens the step's llama_decode, and on html the
#: skip cost 2% of ratio for no speed (docs/measurements.md, "Speed").
SKIP_PPM = 950000
MAX_TABLE_BITS = 22  # 2**22 N-gram buckets: 144 MiB per block coder at most
MAX_CACHE = 1 << 16  # neural cache entries: 151 MiB per block coder at most (640 values each)
#: The engines that compute the model's logits.  "exact" (the default; format version 6
#: on) computes them in integer arithmetic that every machine shares (engines/exact), so
#: its streams decode anywhere; "llama.cpp" runs any GGUF model, but its last bits depend
#: on the build and the CPU, so its streams decode only where they were written.
ENGINES = ("exact", "llama.cpp")
#: Each engine's shortest stream, unless one is given: a block of n tokens is split into
#: n // min_stream_tokens streams (at most ``streams``).  The exact engine's step costs
#: nearly the same for one row as for two (every 8-bit weight is read once a step), so a
#: block of 768 tokens or more (about 3 KB of text) takes a second stream: on 4 KB of
#: alice29 3% more bytes, decoded 1.8 times faster (docs/measurements.md, "Engines").
MIN_STREAM_TOKENS = {"exact": 384, "llama.cpp": 512}


@dataclasses.dataclass(frozen=True)
class CodecConfig:
    """Parameters of the codec (every one changes the compressed bytes).

    block_size: bytes of input per independently decodable block.
    streams: B, the number of token streams of a block decoded in lockstep,
        one ``llama_batch`` per step holding one token of each live stream.
    min_stream_tokens: a block is split into fewer streams when it has fewer
        than ``streams * min_stream_tokens`` tokens (short streams pay the
        cold-start cost of an empty context for little speed); None: the
        engine's (MIN_STREAM_TOKENS).
    window: tokens kept in each stream's KV cache (its context length).
    slide: tokens dropped from the cache when it is full.
    sink: tokens at the start of the cache that are never dropped (the BOS
        token, an "attention sink").
    ngram_order: N of the token N-gram predictor (orders 1..N; 0 = off).
    ngram_bits: log2 of the N-gram table's buckets (its memory bound).
    match_min: shortest repeat the match model follows, in tokens (0 = off).
    bias_rate_ppm: learning rate of the bias head, in millionths (0 = off).
    mixer_rate_ppm: learning rate of the mixer's weights, in millionths
        (0 = fixed weights).
    skip_ppm: a stream skips the model for a step when the cheap predictors
        give one token at least this probability, in millionths (0 = never,
        the default; SKIP_PPM is the measured threshold).
    float_bits: precision of the vocabulary-wide arithmetic that turns logits
        into probabilities (softmax, mixing): 32 (format versions 4 to 6) or 64
        (versions 1-3).  float32 halves the predictors' time per step; the
        probabilities differ in the last bits, so it is part of the format.
    engine: what computes the logits, one of ENGINES ("exact", the default, from
        version 6 on; versions 1-5 are "llama.cpp").
    exact: 1 when every step after the logits is exact arithmetic too (tables
        for exp, integer sums; version 6), 0 for versions 1-5 (numpy's exp,
        whose last bits follow the CPU's SIMD kernels).
    cache_size: entries of the neural cache (predictions/cache.py: the model's hidden
        states of the block's last tokens and what followed them; 0 = off; version 7).
    cache_theta: the cache's sharpness, theta in e**(theta * (cosine - 1)).
    """

    block_size: int = 256 << 10
    streams: int = 8
    min_stream_tokens: int | None = None
    window: int = 1024
    slide: int = 256
    sink: int = 1
    ngram_order: int = 4
    ngram_bits: int = 18
    match_min: int = 6
    bias_rate_ppm: int = 100000
    mixer_rate_ppm: int = 2000
    skip_ppm: int = 0
    float_bits: int = 32
    engine: str = "exact"
    exact: int = 1
    cache_size: int = 32768
    cache_theta: int = 50

    def __post_init__(self):
        if self.min_stream_tokens is None and self.engine in MIN_STREAM_TOKENS:
            object.__setattr__(self, "min_stream_tokens", MIN_STREAM_TOKENS[self.engine])
        self.validate(ValueError)

    def validate(self, error=FormatError):
        checks = [
            (1 <= self.block_size <= MAX_BLOCK_SIZE, f"block_size must be 1..{MAX_BLOCK_SIZE}"),
            (1 <= self.streams <= MAX_STREAMS, f"streams must be 1..{MAX_STREAMS}"),
            (isinstance(self.min_stream_tokens, int)
             and 1 <= self.min_stream_tokens <= MAX_BLOCK_SIZE,
             "min_stream_tokens must be positive"),
            (8 <= self.window <= MAX_WINDOW, f"window must be 8..{MAX_WINDOW}"),
            (0 <= self.sink < self.window // 2, "sink must be below window/2"),
            (1 <= self.slide <= self.window - self.sink - 1, "slide must be 1..window-sink-1"),
            (0 <= self.ngram_order <= MAX_NGRAM_ORDER, f"ngram_order must be 0..{MAX_NGRAM_ORDER}"),
            (10 <= self.ngram_bits <= MAX_TABLE_BITS, f"ngram_bits must be 10..{MAX_TABLE_BITS}"),
            (self.match_min == 0 or 2 <= self.match_min <= 32, "match_min must be 0 or 2..32"),
            (0 <= self.bias_rate_ppm <= 10**6, "bias_rate_ppm must be 0..1000000"),
            (0 <= self.mixer_rate_ppm <= 10**6, "mixer_rate_ppm must be 0..1000000"),
            (0 <= self.skip_ppm <= 10**6, "skip_ppm must be 0..1000000"),
            (not self.skips or self.match_min, "skip needs the match model (match_min > 0)"),
            (self.float_bits in (32, 64), "float_bits must be 32 or 64"),
            (self.engine in ENGINES, f"engine must be one of {', '.join(ENGINES)}"),
            (self.exact in (0, 1), "exact must be 0 or 1"),
            (self.cache_size == 0 or 64 <= self.cache_size <= MAX_CACHE,
             f"cache_size must be 0 or 64..{MAX_CACHE}"),
            (1 <= self.cache_theta <= 1000, "cache_theta must be 1..1000"),
        ]
        for ok, message in checks:
            if not ok:  # a caller's options: the one that is wrong; a header's: all of them
                raise error(f"invalid codec parameters: {message}" if error is ValueError
                            else f"invalid codec parameters {self}: {message}")
        return self

    @property
    def ensemble(self) -> bool:
        """Whether any online predictor refines the model's probabilities."""
        return bool(self.ngram_order or self.match_min or self.bias_rate_ppm
                    or self.mixer_rate_ppm or self.cache_size)

    @property
    def skips(self) -> bool:
        return 0 < self.skip_ppm < 10**6

    @property
    def max_pending(self) -> int:
        """Tokens a stream may hold back from the model (skipped ones + 1): at most 32,
        and few enough that one slide of the window always makes room for them."""
        return min(32, self.window - self.sink - self.slide) if self.skips else 1

    @property
    def dtype(self):
        return np.float32 if self.float_bits == 32 else np.float64

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    def replace(self, **changes) -> "CodecConfig":
        """A copy with ``changes``; another engine brings its own min_stream_tokens
        unless this one's was chosen (differs from its engine's) or one is given."""
        if ("engine" in changes and "min_stream_tokens" not in changes
                and self.min_stream_tokens == MIN_STREAM_TOKENS.get(self.engine)):
            changes["min_stream_tokens"] = None
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)
