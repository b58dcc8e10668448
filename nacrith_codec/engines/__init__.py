"""Tokens -> logits: the engines, behind one small interface, and the loaded model of a process.

An engine has a ``model`` and makes contexts, with the interface of interface.py.
Two implement it: exact/ (integer arithmetic, the same on every machine) and
llamacpp.py (any GGUF model; its last bits follow the build and the CPU).
model_file.py finds and fingerprints the model file, identity.py checks that a
coder has the model (and environment) a stream needs.

Loading is lazy (the first block coded loads it) and happens once per model
file and engine per process.  Contexts are not thread-safe, so each coder
borrows one from a pool for the duration of a block and gives it back; threads
coding at the same time get contexts of their own over the one shared model.
The pool keeps at most ``IDLE_CONTEXTS`` contexts that nobody is using (the
most recently returned), so a long-lived process fed streams of many settings
holds what it is using now and no more.
"""

from __future__ import annotations

import contextlib
import threading

from ..config import ENGINES, CodecConfig
from ..pipeline import memory
from ..predictions.predictor import numpy_environment
from ..tokens import Tokenizer
from . import llamacpp
from .exact.device import check_name

_lock = threading.Lock()
_engines: dict[str, "Engine"] = {}
IDLE_CONTEXTS = 2  # per engine: a compressor and its verifier, or two threads, reuse theirs


def environment(n_gpu_layers: int = 0, numpy: bool = False) -> dict:
    """What a llama.cpp engine's predictions depend on, as a header records it: llama.cpp's
    build and CPU features, and for format versions 1-5 (whose ensemble used numpy's exp)
    numpy's version and SIMD kernels (no model needed)."""
    env = {**llamacpp.environment(), **(numpy_environment() if numpy else {})}
    if n_gpu_layers:  # offloaded layers run other kernels: other logits
        env["gpu_layers"] = n_gpu_layers
    return env


class Engine:
    loads = 0  #: models this process has loaded (one per model file, whatever the work)

    def __init__(self, path: str, n_gpu_layers: int = 0, kind: str = CodecConfig.engine,
                 device: str = "cpu"):
        if kind not in ENGINES:
            raise ValueError(f"engine must be one of {', '.join(ENGINES)}, not {kind!r}")
        Engine.loads += 1
        self.kind = kind
        if kind == "exact":
            from .exact import ExactModel
            self.model = ExactModel(path, device)
            self._new_context = self.model.context
        else:
            self.model = llamacpp.Model(path, n_gpu_layers)
            # (its rows are not independent: the own-slots rule, the key's last, is the exact's)
            self._new_context = lambda *key: llamacpp.Context(self.model, *key[:-1])
        self.tokenizer = Tokenizer(self.model)
        self._idle: list = []  # (key, context) not in use, the most recently returned last
        self._pool_lock = threading.Lock()

    @classmethod
    def get(cls, path, n_gpu_layers: int = 0, kind: str = CodecConfig.engine,
            device: str = "cpu") -> "Engine":
        """The engine of a model file loaded once per process.  ``device`` places the exact
        engine (exact/device.py: "cpu", "cuda", "cuda:N" or "auto", the same logits on
        each); llama.cpp offloads ``n_gpu_layers`` instead, which changes its logits."""
        check_name(device)
        exact = kind == "exact"
        key = (str(path), 0 if exact else n_gpu_layers, kind, device if exact else "cpu")
        with _lock:
            if key not in _engines:
                _engines[key] = cls(*key)
            return _engines[key]

    @contextlib.contextmanager
    def context(self, config, threads: int | None = None, pending: int = 1):
        """A context for ``config``'s streams with room for ``pending`` tokens each per step
        (the skip's held-back tokens, or an encoder's chunk of known ones)."""
        key = (config.streams, config.window, config.slide, config.sink, threads, pending,
               bool(config.cache_size),  # the neural cache reads the hidden states
               not config.skips)  # the exact engine's own-slots rule (exact/context.py)
        with self._pool_lock:
            found = [i for i, (k, _) in enumerate(self._idle) if k == key]
            ctx = self._idle.pop(found[-1])[1] if found else None
        if ctx is None:
            ctx = self._new_context(*key)
        try:
            yield ctx
        finally:
            with self._pool_lock:
                self._idle.append((key, ctx))
                evicted = self._idle[:-IDLE_CONTEXTS]
                del self._idle[:-IDLE_CONTEXTS]
            for _, old in evicted:
                old.close()

    def idle_contexts(self) -> int:
        """Contexts kept for reuse (at most IDLE_CONTEXTS)."""
        return len(self._idle)

    def check_memory(self, config, limit: int, blocks: int = 1) -> int:
        """The bytes a decoder of ``config`` needs (coding ``blocks`` blocks at once);
        MemoryLimitError over ``limit``."""
        return memory.check(config, self.model.n_vocab, self.model.kv_bytes_per_token, limit,
                            self.model.score_bytes, self.model.n_embd, blocks)
