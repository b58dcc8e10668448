"""Predictions from llama.cpp: a loaded GGUF model and batched contexts.

``Model`` owns the weights and the vocabulary; ``Context`` decodes B token
streams in lockstep, one ``llama_batch`` per step holding one token of each
live stream (sequence id = stream index), with a KV-cache sliding window per
stream.  The compressor and the decompressor drive a Context through exactly
the same schedule of ``llama_decode`` calls: llama.cpp's logits may depend on
how tokens are batched, so the schedule is part of the format.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import threading
import weakref

import numpy as np

from ..errors import MemoryLimitError, ModelNotFoundError, NacrithError
from .interface import StreamTokens

_init_lock = threading.Lock()
_initialized = False


@ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)
def _quiet_log(level, text, user_data):  # llama.cpp logs every tensor it loads
    pass


@contextlib.contextmanager
def _signals_held():
    """SIGINT's and SIGTERM's Python handlers held back while llama.cpp loads, then run.

    While it loads a model or makes a context, llama.cpp calls ``_quiet_log`` for every
    line it logs, and those calls are the only Python code the main thread runs: a
    handler that raises (KeyboardInterrupt, the CLI's SIGTERM) raises inside the
    callback, where ctypes prints the exception and drops it, and the run goes on as if
    Ctrl-C had never been pressed.  Only the main thread runs handlers, and only it can
    change them."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held, previous = [], {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        handler = signal.getsignal(sig)
        if callable(handler):
            previous[sig] = signal.signal(sig, lambda signum, frame: held.append((signum, frame)))
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for signum, frame in held[:1]:
            previous[signum](signum, frame)


#: How many times llama.cpp's OpenMP threads check a barrier before they sleep on it
#: (libgomp's GOMP_SPINCOUNT; its default is 300,000).  Threads that spin while a core is
#: taken by another process wait a whole time slice for a partner that cannot run: beside
#: one CPU-bound process on 2 cores, 2,000 bytes took 178 s instead of 8.4 s alone.  With
#: 1,000 checks the same run takes 18 s (2.1x, its fair share being 2x) and 8.7 s alone;
#: sleeping at once (OMP_WAIT_POLICY=passive) costs 2.6x alone, 300 checks 1.7x
#: (docs/measurements.md, "Beside other work").
SPIN_COUNT = 1000


def _spin_briefly():
    """Bound the OpenMP threads' spinning, unless the user has chosen a wait policy.
    libgomp reads its environment once, when llama.cpp's library first loads it."""
    if "GOMP_SPINCOUNT" not in os.environ and "OMP_WAIT_POLICY" not in os.environ:
        os.environ["GOMP_SPINCOUNT"] = str(SPIN_COUNT)


def _llama():
    """Import llama_cpp on first use, so that ``import nacrith_codec`` stays cheap."""
    global _initialized
    _spin_briefly()
    try:
        import llama_cpp
    except ImportError as exc:
        raise NacrithError(f"the llama.cpp engine needs llama-cpp-python, which cannot be "
                           f"imported here ({exc}): install it (docs/usage.md, \"Install\"); "
                           "streams of the exact engine decode without it") from exc

    with _init_lock:
        if not _initialized:
            llama_cpp.llama_log_set(_quiet_log, None)
            with _signals_held():
                llama_cpp.llama_backend_init()
            _initialized = True
    return llama_cpp


def cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


#: llama.cpp's own bound (GGML_MAX_N_THREADS): a larger count overruns its per-thread
#: arrays and crashes the process (``--threads 1000000`` was a segmentation fault).
MAX_THREADS = 512


def check_threads(threads):
    """``threads`` itself when it is a thread count llama.cpp can run (None or 0: one per
    core); TypeError or ValueError, naming the bounds, otherwise.  The one rule for every
    front end (API, CLI, plugins, Dask), checked before any model is loaded."""
    if threads is None:
        return None
    if isinstance(threads, bool) or not isinstance(threads, int):
        raise TypeError(f"threads must be an integer, not {type(threads).__name__}")
    if not 0 <= threads <= MAX_THREADS:
        raise ValueError(f"threads must be between 1 and {MAX_THREADS} (0 or None: one per "
                         f"core, {cores()} here), not {threads}")
    return threads


#: The thread count a front end uses when it is given none (``threads=None``): what
#: ``nacrith --threads``, ``nacrith 7z --threads`` and ``threads=`` set, for programs
#: that run nacrith inside others (7z, fsspec), as ZSTD_NBTHREADS does for zstd.
THREADS_ENV = "NACRITH_THREADS"


def chosen_threads(threads=None):
    """``threads`` checked (``check_threads``), or when it is None the count
    ``$NACRITH_THREADS`` names (None when unset: one per core).  The one rule every front
    end applies, before any model is loaded; a bad value names the variable."""
    if threads is not None or not os.environ.get(THREADS_ENV, "").strip():
        return check_threads(threads)
    text = os.environ[THREADS_ENV].strip()
    if not text.isdigit():
        raise ValueError(f"{THREADS_ENV}={text!r} in the environment is not a thread count "
                         "(an integer; 0: one per core)")
    try:
        return check_threads(int(text))
    except ValueError as exc:
        raise ValueError(f"{THREADS_ENV}={text!r} in the environment: {exc}") from None


def environment() -> dict:
    """What llama.cpp's predictions depend on beyond the model file."""
    L = _llama()
    info = L.llama_print_system_info().decode("utf-8", "replace")
    features = [item.split("=")[0].split(":")[-1].strip() for item in info.split("|")
                if item.strip().endswith("= 1")]
    return {"llama_cpp_python": L.__version__, "cpu": ",".join(features)}


class Model:
    """A GGUF model loaded once per process and shared by every context."""

    score_bytes = 0  # llama.cpp's attention buffers are in memory.py's fixed engine base

    def __init__(self, path: str, n_gpu_layers: int = 0, vocab_only: bool = False):
        L = _llama()
        params = L.llama_model_default_params()
        params.n_gpu_layers = n_gpu_layers
        params.vocab_only = vocab_only  # the tokenizer alone: no weights loaded
        self.path = str(path)
        with _signals_held():
            self.ptr = L.llama_model_load_from_file(self.path.encode(), params)
        if not self.ptr:
            raise ModelNotFoundError(f"llama.cpp could not load the model file {self.path}")
        weakref.finalize(self, L.llama_model_free, self.ptr)
        self.vocab = L.llama_model_get_vocab(self.ptr)
        self.n_vocab = L.llama_vocab_n_tokens(self.vocab)
        bos = L.llama_vocab_bos(self.vocab)
        self.bos = bos if bos >= 0 else 0
        self.pieces = self._pieces()
        if vocab_only:
            return
        # the KV cache per token: keys and values (f16) of every layer's KV heads
        self.n_embd = L.llama_model_n_embd(self.ptr)
        head = self.n_embd // max(1, L.llama_model_n_head(self.ptr))
        self.kv_bytes_per_token = (2 * 2 * L.llama_model_n_layer(self.ptr)
                                   * L.llama_model_n_head_kv(self.ptr) * head)

    def _pieces(self) -> list[bytes]:
        """Bytes of every token as the decoder will emit them (special tokens: b"")."""
        L, buf = _llama(), ctypes.create_string_buffer(1024)
        pieces = []
        for token in range(self.n_vocab):
            n = L.llama_token_to_piece(self.vocab, token, buf, len(buf), 0, False)
            if n < 0:
                raise NacrithError(f"token {token} of {self.path} has a piece over 1 KiB")
            pieces.append(buf.raw[:n])
        return pieces

    def tokenize(self, text: bytes) -> np.ndarray:
        """llama.cpp's tokenization of UTF-8 text, no BOS, special tokens as text."""
        L = _llama()
        cap = len(text) + 8
        out = (L.llama_token * cap)()
        n = L.llama_tokenize(self.vocab, text, len(text), out, cap, False, False)
        if n < 0:
            raise NacrithError("llama.cpp tokenization overflowed its buffer")
        return np.ctypeslib.as_array(out)[:n].astype(np.int32)


_DECODE_ERRORS = {  # llama_decode's return codes (llama.h)
    1: "no free KV cache cell for the batch: the context is smaller than the window needs",
    2: "aborted",
    -1: "invalid batch",
}


class Context(StreamTokens):
    """B streams decoded in lockstep with a sliding window of ``window`` tokens.

    Each stream holds the tokens waiting to be fed (``push``); ``step(rows)``
    feeds the waiting tokens of the given streams in one llama_batch and
    returns the logits after the last token of each.  Without skipping every
    stream waits with exactly one token at every step.  A stream slides when
    its waiting tokens would overflow its window: it drops ``slide`` tokens
    after the first ``sink`` ones and shifts the rest down; nothing is ever
    re-evaluated.
    """

    def __init__(self, model: Model, streams: int, window: int, slide: int, sink: int,
                 threads: int | None = None, pending: int = 1, hidden: bool = False):
        L = _llama()
        self.model, self.streams = model, streams
        self.window, self.slide, self.sink = window, slide, sink
        params = L.llama_context_default_params()
        params.n_ctx = streams * window
        capacity = streams * pending
        params.n_batch = params.n_ubatch = max(capacity, 8)
        params.n_seq_max = streams
        # Both change speed and logits: pinned, never left to llama.cpp's "auto".
        params.kv_unified = False  # each stream attends over its own cells only (2-3x faster)
        params.flash_attn_type = L.LLAMA_FLASH_ATTN_TYPE_DISABLED
        params.no_perf = True
        # The final hidden states, from the same llama_decode (every token becomes an
        # output: the logits of the last of each row are picked out below).
        self._keep_hidden = params.embeddings = hidden
        params.pooling_type = L.LLAMA_POOLING_TYPE_NONE
        # llama.cpp's default is 4 threads whatever the machine: on 2 cores that is 17%
        # slower than 2 (8 streams, measured), so the default is one thread per core.
        params.n_threads = params.n_threads_batch = check_threads(threads) or cores()
        with _signals_held():
            self.ptr = L.llama_init_from_model(model.ptr, params)
        if not self.ptr:
            need = streams * window * model.kv_bytes_per_token
            raise MemoryLimitError(f"llama.cpp could not create a context for {streams} x "
                                   f"{window} tokens (about {need >> 20} MiB): out of memory?")
        self._free = weakref.finalize(self, L.llama_free, self.ptr)
        self.memory = L.llama_get_memory(self.ptr)
        self.batch = L.llama_batch_init(capacity, 0, 1)
        weakref.finalize(self, L.llama_batch_free, self.batch)
        for i in range(capacity):
            self.batch.n_seq_id[i] = 1
        self._token = np.ctypeslib.as_array(self.batch.token, (capacity,))
        self._pos = np.ctypeslib.as_array(self.batch.pos, (capacity,))
        self._logits = np.ctypeslib.as_array(self.batch.logits, (capacity,))
        self._seq = [self.batch.seq_id[i] for i in range(capacity)]
        super().__init__(streams, pending)

    def close(self):
        """Free llama.cpp's context now (also done when the object is collected)."""
        self._free()

    def reset(self):
        _llama().llama_memory_clear(self.memory, True)
        super().reset()

    def _slide(self, seq: int):
        L, lo, hi = _llama(), self.sink, self.sink + self.slide
        L.llama_memory_seq_rm(self.memory, seq, lo, hi)
        L.llama_memory_seq_add(self.memory, seq, hi, -1, -self.slide)
        self.cached[seq] -= self.slide

    def step(self, rows) -> np.ndarray:
        """Feed the waiting tokens of streams ``rows`` (ascending).

        Returns their next-token logits, shape (len(rows), n_vocab): a view
        into llama.cpp's buffer, valid until the next step.
        """
        L, n, last = _llama(), 0, []
        for seq in rows:
            k = int(self.pending[seq])
            while self.cached[seq] + k > self.window:
                self._slide(seq)
            self._token[n:n + k] = self.waiting[seq, :k]
            self._pos[n:n + k] = np.arange(self.cached[seq], self.cached[seq] + k)
            self._logits[n:n + k] = 0
            self._logits[n + k - 1] = 1
            for i in range(n, n + k):
                self._seq[i][0] = seq
            n += k
            last.append(n - 1)
            self.cached[seq] += k
            self.pending[seq] = 0
        self.batch.n_tokens = n
        rc = L.llama_decode(self.ptr, self.batch)
        if rc != 0:
            why = _DECODE_ERRORS.get(rc, "a fatal error in llama.cpp")
            raise NacrithError(f"llama_decode failed with code {rc} ({why})")
        ptr = L.llama_get_logits(self.ptr)
        if not self._keep_hidden:
            return np.ctypeslib.as_array(ptr, (len(rows), self.model.n_vocab))
        hidden = np.ctypeslib.as_array(L.llama_get_embeddings(self.ptr), (n, self.model.n_embd))
        self.hidden = hidden[last]
        return np.ctypeslib.as_array(ptr, (n, self.model.n_vocab))[last]
