"""What runs on a Dask worker: the core's block tasks (nacrith_codec.corpus.tasks), with
Dask's view of the worker (its address, its share of the host's cores) and progress.

While it codes, a task publishes its progress (bytes done, cumulatively) on the
``nacrith-progress`` topic of Dask's event log, at most twice a second (less often on
big clusters: the scheduler relays at most about 200 events a second); the client
turns the events into a progress bar and counts the blocks that had to be re-run.
"""

from __future__ import annotations

import dataclasses
import time

from distributed import get_worker
from distributed.comm import get_address_host

from nacrith_codec.corpus import tasks
from nacrith_codec.corpus.tasks import Done, Source  # noqa: F401  (what tasks return and read)
from nacrith_codec.engines.identity import identify
from nacrith_codec.engines.llamacpp import cores

PROGRESS_TOPIC = "nacrith-progress"


def describe(model, n_gpu_layers: int, engine: str = "exact") -> dict:
    """This worker's model and, for the llama.cpp engine, its environment (run on every
    worker before any work; the exact engine's results depend on no environment)."""
    return dataclasses.asdict(identify(model, n_gpu_layers, engine))


@dataclasses.dataclass(frozen=True)
class Settings(tasks.Settings):
    """The run's settings, and how its workers share their hosts."""

    host_threads: tuple = ()  # (host, Dask threads of all its workers)
    progress_every: float = 0.5  # seconds between a task's progress events

    def __hash__(self):
        return super().__hash__()

    def llama_threads(self) -> int:
        if self.threads:
            return self.threads
        worker = get_worker()
        shared = dict(self.host_threads).get(get_address_host(worker.address),
                                             worker.state.nthreads)
        return max(1, cores() // max(1, shared))


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


def _here(settings: Settings) -> dict:
    """A task's progress callback (its first event marks this attempt) and this worker."""
    return {"progress": _Progress(settings.progress_every), "threads": settings.llama_threads(),
            "where": f"worker {get_worker().address}"}


def compress_block(settings: Settings, source: Source, header: bytes, number: int) -> Done:
    """The record of block ``number`` of a stream (corpus.tasks.encode_block)."""
    return tasks.encode_block(settings, source, header, number, **_here(settings))


def decompress_block(settings: Settings, source: Source, header: bytes, raw_len: int,
                     number: int) -> Done:
    """The original bytes of block ``number`` of a stream (corpus.tasks.decode_one)."""
    return tasks.decode_one(settings, source, header, raw_len, number, **_here(settings))


def decompress_stream(settings: Settings, source: Source) -> Done:
    """A whole file without a usable index (corpus.tasks.decode_stream)."""
    return tasks.decode_stream(settings, source, **_here(settings))


#: The Dask function of each kind of task the plan asks for.
FUNCTIONS = {"encode": compress_block, "decode": decompress_block,
             "decode_stream": decompress_stream}
#: Task names in Dask's dashboard (its task stream and progress group tasks by them;
#: "nacrith-compress-..." would show as "nacrith", since Dask takes 8-letter words
#: that start like hexadecimal for hashes).
NAMES = {compress_block: "nacrith-encode-block", decompress_block: "nacrith-decode-block",
         decompress_stream: "nacrith-decode-stream"}
