"""Who codes the blocks: this process, or a pool of worker processes.

Blocks are independent, so ``workers=N`` codes up to N of them at once, each
in a process of its own that loads the model once and owns its llama.cpp
context and threads.  The compressed bytes do not depend on N: a block's
record is a function of its bytes and the codec's configuration only (the
shipped weights give the same logits with any thread count).  Results come
back in submission order, and at most ``2 * N`` blocks are in flight, so
memory stays bounded.

Both runners have one interface: ``submit(kind, item)`` with kind "encode"
(bytes -> record) or "decode" (block record -> bytes), then ``results()``.
"""

from __future__ import annotations

import collections
import concurrent.futures as cf
import multiprocessing
import threading

from .block import BlockCoder
from .stats import add_stats, new_stats
from ..engines import Engine
from ..errors import NacrithError
from ..engines.llamacpp import cores


class Serial:
    """Blocks coded here, one at a time, as soon as they are submitted."""

    limit = 1

    def __init__(self, engine: Engine, config, threads=None, progress=None, memlimit: int = 0):
        engine.check_memory(config, memlimit)  # before the coder allocates anything
        self.coder = BlockCoder(engine, config, threads, progress)
        self._done = collections.deque()

    @property
    def stats(self) -> dict:
        return self.coder.stats

    def __len__(self):
        return len(self._done)

    def submit(self, kind: str, item):
        self._done.append(getattr(self.coder, kind)(item))

    def results(self, wait: bool = False):
        while self._done:
            yield self._done.popleft()

    def close(self):
        pass


# -- in a worker process -----------------------------------------------------------

_coders: dict = {}  # the most recently used last
KEPT_CODERS = 4  # coders a process keeps for reuse (each holds a block's tables)


def local_coder(model_path, n_gpu_layers: int, threads, config, progress=None,
                memlimit: int = 0, device: str = "cpu") -> BlockCoder:
    """This process's block coder for these settings, made on first use and kept: the
    model loads once per process, whatever the number of blocks (or files, or tasks of a
    cluster) it codes.  One per thread, since a coder's predictors hold a block's state;
    the ``KEPT_CODERS`` used last are kept.  ``memlimit`` and ``device``: as for
    NacrithDecompressor."""
    key = (str(model_path), n_gpu_layers, threads, config, device, threading.get_ident())
    engine = Engine.get(model_path, n_gpu_layers, config.engine, device)
    engine.check_memory(config, memlimit)
    coder = _coders.pop(key, None) or BlockCoder(engine, config, threads)
    _coders[key] = coder
    while len(_coders) > KEPT_CODERS:
        del _coders[next(iter(_coders))]
    coder.progress = progress
    coder.stats = new_stats()
    return coder


_worker: dict = {}


def _start_worker(model_path: str, gpu_layers: int, threads, counter, device: str):
    _worker.update(path=model_path, gpu=gpu_layers, threads=threads, counter=counter,
                   device=device)
    if threads:  # numpy's BLAS (the exact engine's products) on this worker's share of the
        # cores: a pool per process of one thread per core spins them against each other
        from threadpoolctl import threadpool_limits  # (2 processes on 2 cores: 2.6x slower)
        threadpool_limits(limits=threads, user_api="blas")


def _tick(n: int):
    with _worker["counter"].get_lock():
        _worker["counter"].value += n


def _task(config, kind: str, item, memlimit: int = 0):
    coder = local_coder(_worker["path"], _worker["gpu"], _worker["threads"], config, _tick,
                        memlimit, _worker["device"])
    return getattr(coder, kind)(item), coder.stats


# -- in the calling process --------------------------------------------------------

class Pool:
    """Blocks coded by ``workers`` processes, results in order."""

    def __init__(self, model_path, config, workers: int, threads=None, progress=None,
                 n_gpu_layers: int = 0, memlimit: int = 0, device: str = "cpu"):
        context = multiprocessing.get_context("spawn")  # llama.cpp's threads do not survive fork
        if threads is None:
            threads = max(1, cores() // workers)
        self._counter = context.Value("q", 0)
        self._seen = 0
        self._executor = cf.ProcessPoolExecutor(
            workers, context, initializer=_start_worker,
            initargs=(str(model_path), n_gpu_layers, threads, self._counter, device))
        self.config, self.limit, self._progress = config, 2 * workers, progress
        self._memlimit = memlimit
        self._futures = collections.deque()
        self.stats = new_stats()

    def __len__(self):
        return len(self._futures)

    def submit(self, kind: str, item):
        self._futures.append(self._executor.submit(_task, self.config, kind, item,
                                                   self._memlimit))

    def _report(self):
        if self._progress:
            value = self._counter.value
            if value > self._seen:
                self._progress(value - self._seen)
                self._seen = value

    def results(self, wait: bool = False):
        """Finished results in order; waits for the oldest while more than ``limit`` are
        in flight, or for all with ``wait``."""
        while self._futures:
            oldest = self._futures[0]
            while not oldest.done() and (wait or len(self._futures) > self.limit):
                cf.wait([oldest], timeout=0.25)
                self._report()
            if not oldest.done():
                return
            self._futures.popleft()
            try:
                result, stats = oldest.result()
            except cf.process.BrokenProcessPool as exc:
                raise NacrithError(f"a worker process died ({exc}); if this is a script, does "
                                   "its main code run under `if __name__ == '__main__':`?") from exc
            add_stats(self.stats, stats)
            self._report()
            yield result

    def close(self):
        """Stop the workers; blocks still being coded are abandoned (an error, an interrupt)."""
        busy = any(not future.done() for future in self._futures)
        for future in self._futures:
            future.cancel()
        self._futures.clear()
        if busy:  # do not wait minutes for blocks nobody will read
            processes = getattr(self._executor, "_processes", None) or {}
            for process in list(processes.values()):
                process.terminate()
        self._executor.shutdown(wait=True, cancel_futures=True)
