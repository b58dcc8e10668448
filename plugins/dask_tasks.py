"""What runs on a Dask worker: one block of one file, compressed or decompressed.

A task is a pure function of its arguments (where to read a block, or the block's
bytes, and the codec's settings), so when Dask runs it again on another worker after
a worker died, it returns the same bytes.  The model loads once per worker process
(``workers.local_coder`` and ``Engine.get`` keep it) and serves every later task.

Errors of the data (a NacrithError: corrupt input, another model; an input that
changed size) are returned, not raised: any worker would meet them again, so they are
not worth Dask's retries, which are for what may pass (storage, network).

While it codes, a task publishes its progress (bytes done, cumulatively) on the
``nacrith-progress`` topic of Dask's event log, at most twice a second (less often on
big clusters: the scheduler relays at most about 200 events a second); the client
turns the events into a progress bar and counts the blocks that had to be re-run.
"""

from __future__ import annotations

import dataclasses
import os
import time

import fsspec
from distributed import get_worker
from distributed.comm import get_address_host

from nacrith_codec import api, container
from nacrith_codec.config import CodecConfig
from nacrith_codec.engine import environment_json
from nacrith_codec.errors import EnvironmentMismatchError, ModelMismatchError, NacrithError, VerifyError
from nacrith_codec.llm import cores
from nacrith_codec.model_file import fingerprint, resolve_model_path
from nacrith_codec.random_access import decode_block
from nacrith_codec.workers import local_coder

PROGRESS_TOPIC = "nacrith-progress"


def describe(model, n_gpu_layers: int, engine: str = "exact") -> dict:
    """This worker's model and, for the llama.cpp engine, its environment (run on every
    worker before any work; the exact engine's results depend on no environment)."""
    path = resolve_model_path(model)
    return {"sha256": fingerprint(path), "model_name": os.path.basename(path),
            "env": environment_json(n_gpu_layers) if engine == "llama.cpp" else "",
            "cores": cores()}


@dataclasses.dataclass(frozen=True)
class Settings:
    """What every task of a run needs besides its block."""

    model: str | None  # a path valid on the workers, or None: each worker's default model
    n_gpu_layers: int
    sha256: str  # the model every worker must have
    env: str  # the environment every worker must have (compression: recorded in headers)
    config: CodecConfig | None = None  # compression only; decompression reads the header
    threads: int | None = None  # llama.cpp threads per task; None: the host's cores shared
    host_threads: tuple = ()  # (host, Dask threads of all its workers)
    verify: bool = False
    progress_every: float = 0.5  # seconds between a task's progress events

    def llama_threads(self) -> int:
        if self.threads:
            return self.threads
        worker = get_worker()
        shared = dict(self.host_threads).get(get_address_host(worker.address),
                                             worker.state.nthreads)
        return max(1, cores() // max(1, shared))


@dataclasses.dataclass(frozen=True)
class Source:
    """A byte range of an input: read by the worker, or shipped with the task (inputs
    the workers cannot reach, such as the client's memory:// filesystem)."""

    url: str
    start: int
    length: int
    storage_options: dict = dataclasses.field(default_factory=dict)
    data: bytes | None = None

    def read(self) -> bytes:
        if self.data is not None:
            return self.data
        fs, path = fsspec.core.url_to_fs(self.url, **self.storage_options)
        data = fs.cat_file(path, self.start, self.start + self.length)
        if len(data) != self.length:
            raise ValueError(f"{self.url} changed while it was being coded: {len(data)} bytes "
                             f"at offset {self.start} where {self.length} were planned")
        return data


@dataclasses.dataclass(frozen=True)
class Done:
    """A task's outcome: the bytes it made, or the error the data caused."""

    data: bytes = b""
    stats: dict = dataclasses.field(default_factory=dict)
    error: Exception | None = None


_checked: dict = {}  # Settings -> model path, once this worker's model and environment passed


def _model_path(settings: Settings) -> str:
    """This worker's model file, after checking that it codes as the run requires."""
    key = (settings.model, settings.n_gpu_layers, settings.sha256, settings.env)
    if key not in _checked:
        engine = settings.config.engine if settings.config is not None else "exact"
        mine = describe(settings.model, settings.n_gpu_layers, engine)
        if mine["sha256"] != settings.sha256:
            raise ModelMismatchError(
                f"worker {get_worker().address} has the model {mine['model_name']!r} "
                f"(sha256 {mine['sha256']}), the run needs sha256 {settings.sha256}")
        if mine["env"] != settings.env:
            raise EnvironmentMismatchError(
                f"worker {get_worker().address} runs in another environment ({mine['env']}) "
                f"than the run's ({settings.env}): its blocks would not decode elsewhere")
        _checked[key] = str(resolve_model_path(settings.model))
    return _checked[key]


class _Progress:
    """A coder's progress callback that publishes the task's bytes done."""

    def __init__(self, every: float):
        self.every, self.worker = every, get_worker()
        self.key = self.worker.get_current_task()
        self.done, self._sent = 0, 0.0
        self._publish()

    def _publish(self):
        self._sent = time.monotonic()
        self.worker.log_event(PROGRESS_TOPIC, {"key": self.key, "bytes": self.done})

    def __call__(self, n: int):
        self.done += n
        if time.monotonic() - self._sent >= self.every:
            self._publish()


def _start(settings: Settings) -> tuple:
    """A task's progress callback (its first event marks this attempt), then the model."""
    progress = _Progress(settings.progress_every)
    return progress, _model_path(settings)


def _run(work) -> Done:
    try:
        return work()
    except (NacrithError, ValueError) as exc:
        return Done(error=exc)


def compress_block(settings: Settings, source: Source, header: bytes, number: int) -> Done:
    """The record of block ``number`` of a stream (``header``: the stream's, for ``verify``;
    the writer binds the record to its place again, as it does every record)."""
    def work():
        progress, path = _start(settings)
        data = source.read()
        coder = local_coder(path, settings.n_gpu_layers, settings.llama_threads(),
                            settings.config, progress)
        record = coder.encode(data)
        if settings.verify:
            _verify(settings, path, header, number, record, data, source)
        return Done(record, coder.stats)
    return _run(work)


def _verify(settings: Settings, path: str, header: bytes, number: int, record: bytes,
            data: bytes, source: Source):
    where = f"a block of {source.url} at offset {source.start}"
    key = container.key_of(header)
    if key:  # bound as the writer will bind it
        record = container.bind(record, key, number)
    try:
        decoded = decode_block(header, record, len(data), number, model=path,
                               n_gpu_layers=settings.n_gpu_layers,
                               threads=settings.llama_threads())
    except NacrithError as exc:
        raise VerifyError(f"verification failed: {where} does not decode "
                          f"({type(exc).__name__}: {exc})") from exc
    if decoded != data:
        raise VerifyError(f"verification failed: {where} decodes to other bytes")


def decompress_block(settings: Settings, source: Source, header: bytes, raw_len: int,
                     number: int) -> Done:
    """The original bytes of block ``number`` of a stream, from its record."""
    def work():
        progress, path = _start(settings)
        data = decode_block(header, source.read(), raw_len, number, model=path,
                            n_gpu_layers=settings.n_gpu_layers,
                            threads=settings.llama_threads(), progress=progress)
        return Done(data)
    return _run(work)


def decompress_stream(settings: Settings, source: Source) -> Done:
    """A whole file of one or more streams without a usable index, decoded in order."""
    def work():
        progress, path = _start(settings)
        return Done(api.decompress(source.read(), model=path, n_gpu_layers=settings.n_gpu_layers,
                                   threads=settings.llama_threads(), progress=progress))
    return _run(work)


#: Task names in Dask's dashboard (its task stream and progress group tasks by them;
#: "nacrith-compress-..." would show as "nacrith", since Dask takes 8-letter words
#: that start like hexadecimal for hashes).
NAMES = {compress_block: "nacrith-encode-block", decompress_block: "nacrith-decode-block",
         decompress_stream: "nacrith-decode-stream"}
