"""Levels 1 .. 9 (gzip's, xz's and zstd's habit): a model, window and streams chosen together.

``nacrith -9 FILE``, ``compress(data, preset=9)``.  A level is a starting point:
options given beside it win (``-9 --window 1024``, ``preset=9, window=1024``), as
with xz.  A stream records every parameter its level chose (the model, the window,
the streams: they change the bytes), so its decoder needs no level;
``nacrith info`` names the level whose settings a stream has.  Level 6 is the
default.  Levels 8 and 9 take fewer, longer streams (fewer cold starts, slower
steps per token) and level 9 the stronger Gemma 3 270M (``pip install "nacrith-codec[gemma]"``).  What
each level measured is in docs/usage.md, "Levels".
"""

from __future__ import annotations

import dataclasses

from .config import CodecConfig
from .engines.model_file import DEFAULT_NAME

DEFAULT_LEVEL = 6


@dataclasses.dataclass(frozen=True)
class Level:
    model: str | None  # a named model (None: the default model)
    options: dict  # CodecConfig fields that differ from the defaults
    about: str


LEVELS = {
    1: Level(None, dict(streams=16, window=256, slide=64, cache_size=0),
             "fastest: 16 streams, 256-token windows, no neural cache"),
    2: Level(None, dict(streams=16, window=512, slide=128, cache_size=0),
             "16 streams, 512-token windows, no neural cache"),
    3: Level(None, dict(streams=16, window=512, slide=128), "16 streams, 512-token windows"),
    4: Level(None, dict(streams=12, window=768, slide=192), "12 streams, 768-token windows"),
    5: Level(None, dict(streams=8, window=768, slide=192), "8 streams, 768-token windows"),
    6: Level(None, {}, "the defaults: 8 streams, 1,024-token windows"),
    7: Level(None, dict(window=2048, slide=512), "2,048-token windows"),
    8: Level(None, dict(streams=4, window=2048, slide=512),
             "4 streams (longer, so fewer cold starts), 2,048-token windows"),
    9: Level("gemma3-270m", dict(streams=4, window=2048, slide=512),
             "as 8, with Gemma 3 270M (pip install \"nacrith-codec[gemma]\")"),
}

#: The fields a level sets (the others are left as they are when naming a stream's level).
_SHAPING = sorted({f for level in LEVELS.values() for f in level.options})


def check(level) -> int:
    if isinstance(level, bool) or not isinstance(level, int) or level not in LEVELS:
        raise ValueError(f"preset must be an integer 1..9, not {level!r}")
    return level


def apply(level, model, options: dict) -> tuple[str | None, dict]:
    """(model, options) of ``level`` under what the caller gave (which wins)."""
    chosen = LEVELS[check(level)]
    return (model if model is not None else chosen.model), {**chosen.options, **options}


def level_of(config: CodecConfig, model: str | None) -> int | None:
    """The level whose settings ``config`` and ``model`` (a named model's name; None: a
    file of no name) are, or None."""
    for n, level in LEVELS.items():
        wanted = {f: level.options.get(f, getattr(CodecConfig, f)) for f in _SHAPING}
        if ({f: getattr(config, f) for f in _SHAPING} == wanted
                and model == (level.model or DEFAULT_NAME)):
            return n
    return None

