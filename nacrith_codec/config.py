"""Every setting that changes the compressed bytes, in one object.

The container serializes a ``CodecConfig`` into the stream header and the
decoder rebuilds itself from it, so nothing the decoder needs travels outside
the stream.  Settings that change only speed (threads, progress) are not here.
"""

from __future__ import annotations

import dataclasses

from .errors import FormatError

#: Largest values a header may declare.  Checked before anything is allocated,
#: so a hostile header cannot make the decoder reserve unbounded memory.
MAX_BLOCK_SIZE = 16 << 20
MAX_STREAMS = 64
MAX_WINDOW = 8192  # SmolLM2's training context; larger models can lift it in a new version


@dataclasses.dataclass(frozen=True)
class CodecConfig:
    """Parameters of the neural coder.

    block_size: bytes of input per independently decodable block.
    streams: B, the number of token streams of a block decoded in lockstep,
        one ``llama_batch`` per step holding one token of each live stream.
    min_stream_tokens: a block is split into fewer streams when it has fewer
        than ``streams * min_stream_tokens`` tokens (short streams pay the
        cold-start cost of an empty context for little speed).
    window: tokens kept in each stream's KV cache (its context length).
    slide: tokens dropped from the cache when it is full.
    sink: tokens at the start of the cache that are never dropped (the BOS
        token, an "attention sink").
    """

    block_size: int = 256 << 10
    streams: int = 8
    min_stream_tokens: int = 512
    window: int = 1024
    slide: int = 256
    sink: int = 1

    def __post_init__(self):
        self.validate(ValueError)

    def validate(self, error=FormatError):
        checks = [
            (1 <= self.block_size <= MAX_BLOCK_SIZE, f"block_size must be 1..{MAX_BLOCK_SIZE}"),
            (1 <= self.streams <= MAX_STREAMS, f"streams must be 1..{MAX_STREAMS}"),
            (1 <= self.min_stream_tokens <= MAX_BLOCK_SIZE, "min_stream_tokens must be positive"),
            (8 <= self.window <= MAX_WINDOW, f"window must be 8..{MAX_WINDOW}"),
            (0 <= self.sink < self.window // 2, "sink must be below window/2"),
            (1 <= self.slide <= self.window - self.sink - 1, "slide must be 1..window-sink-1"),
        ]
        for ok, message in checks:
            if not ok:
                raise error(f"invalid codec parameters {self}: {message}")
        return self

    def replace(self, **changes) -> "CodecConfig":
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)
