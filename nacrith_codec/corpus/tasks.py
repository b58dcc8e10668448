"""What a block task does on a worker: one block of one file, compressed or decompressed.

A task is a pure function of its arguments (where to read a block, or the block's
bytes, and the run's settings), so when a runner runs it again on another worker
after a worker died, it returns the same bytes.  The model loads once per worker
process (``pipeline.workers.local_coder`` and ``Engine.get`` keep it) and serves
every later task.

Errors of the data (a NacrithError: corrupt input, another model; an input that
changed size) are returned, not raised: any worker would meet them again, so they are
not worth a runner's retries, which are for what may pass (storage, network).
"""

from __future__ import annotations

import dataclasses

import fsspec

from .. import api, container
from ..config import CodecConfig
from ..engines.identity import Identity, identify
from ..errors import NacrithError
from ..pipeline.workers import local_coder
from ..random_access import decode_block
from ..random_access import verify_block


@dataclasses.dataclass(frozen=True)
class Settings:
    """What every task of a run needs besides its block."""

    model: str | None  # a path valid on the workers, or None: each worker's default model
    n_gpu_layers: int
    sha256: str  # the model every worker must have
    env: dict  # the environment every worker must have (compression: recorded in headers)
    config: CodecConfig | None = None  # compression only; decompression reads the header
    threads: int | None = None  # llama.cpp threads per task; None: the runner decides
    verify: bool = False
    device: str = "cpu"  # the exact engine's, on each worker ("auto": its GPU if it has one)

    @property
    def engine(self) -> str:
        """The engine whose environment must match: decompression checks each stream
        against its own header instead."""
        return self.config.engine if self.config is not None else "exact"

    def __hash__(self):
        return hash((self.model, self.n_gpu_layers, self.sha256, self.config, self.threads,
                     self.device))


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


_checked: dict = {}  # (model, gpu, sha256, env) -> model path, once this worker's passed


def model_path(settings: Settings, where: str) -> str:
    """This worker's model file, after checking that it codes as the run requires
    (``where`` names the worker in the error)."""
    key = (settings.model, settings.n_gpu_layers, settings.sha256, container.env_text(settings.env))
    if key not in _checked:
        mine = identify(settings.model, settings.n_gpu_layers, settings.engine)
        mine.require(Identity(settings.sha256, "", settings.env), "the run", where)
        from ..engines.model_file import resolve_model_path
        _checked[key] = str(resolve_model_path(settings.model))
    return _checked[key]


def returned(work) -> Done:
    """``work()``'s Done, or a Done holding the error the data caused."""
    try:
        return work()
    except (NacrithError, ValueError) as exc:
        return Done(error=exc)


def encode_block(settings: Settings, source: Source, header: bytes, number: int, *,
                 where: str, threads: int, progress=None) -> Done:
    """The record of block ``number`` of a stream (``header``: the stream's bytes, for
    ``verify``; the writer binds the record to its place again, as it does every record)."""
    def work():
        path = model_path(settings, where)
        data = source.read()
        coder = local_coder(path, settings.n_gpu_layers, threads, settings.config, progress,
                            device=settings.device)
        record = coder.encode(data)
        if settings.verify:
            key = container.key_of(header)
            bound = container.bind(record, key, number) if key else record
            verify_block(header, bound, data, number,
                         f"a block of {source.url} at offset {source.start}", model=path,
                         n_gpu_layers=settings.n_gpu_layers, device=settings.device,
                         threads=threads)
        return Done(record, coder.stats)
    return returned(work)


def decode_one(settings: Settings, source: Source, header: bytes, raw_len: int, number: int,
               *, where: str, threads: int, progress=None) -> Done:
    """The original bytes of block ``number`` of a stream, from its record."""
    def work():
        path = model_path(settings, where)
        return Done(decode_block(header, source.read(), raw_len, number, source.start,
                                 model=path, n_gpu_layers=settings.n_gpu_layers,
                                 device=settings.device, threads=threads, progress=progress))
    return returned(work)


def decode_stream(settings: Settings, source: Source, *, where: str, threads: int,
                  progress=None) -> Done:
    """A whole file of one or more streams without a usable index, decoded in order."""
    def work():
        path = model_path(settings, where)
        return Done(api.decompress(source.read(), model=path, n_gpu_layers=settings.n_gpu_layers,
                                   device=settings.device, threads=threads, progress=progress))
    return returned(work)
