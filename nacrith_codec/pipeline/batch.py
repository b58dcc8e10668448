"""Many blocks' streams in one forward pass of the exact engine.

The exact engine computes each row of a step independently of the others
(engines/exact/context.py), so the streams of several blocks can share one
context and one forward pass without changing a bit of any block.  A bigger step
uses a BLAS (and a GPU) better: 8 rows of SmolLM2's products run at about 218
tokens/s on two cores, 64 rows at 535 (REFERENCE.md).  llama.cpp's logits depend
on the batch, so its blocks never share a pass.

``SharedContext`` holds one context of ``lanes x streams`` streams.  A block coder
borrows a ``Lane`` (its own ``streams`` of them, with the interface of
engines.interface.Context) for one run of the schedule.  Each lane's ``step``
waits until every lane in use has asked for its step, and the last to ask runs
them all as one step; a lane whose streams all skip the model this step asks at
its next one, and the others wait for it.  ``Threads`` codes up to ``workers``
blocks at once in threads of this process over one shared context: one model in
memory, one forward pass per step, the predictors of the blocks in parallel.
"""

from __future__ import annotations

import collections
import concurrent.futures as cf
import contextlib
import threading

import numpy as np

from ..engines.interface import StreamTokens
from ..errors import NacrithError
from .block import BlockCoder
from .stats import add_stats, new_stats


class Lane(StreamTokens):
    """``streams`` consecutive streams of a shared context, seen as a context of their own:
    its queues are views of the shared context's, so ``push`` is StreamTokens' own."""

    def __init__(self, shared: "SharedContext", index: int):  # no arrays of its own
        self._shared, self.index = shared, index
        n, ctx = shared.streams, shared.ctx
        self._streams = range(index * n, (index + 1) * n)
        here = slice(self._streams.start, self._streams.stop)
        self.waiting, self.pending = ctx.waiting[here], ctx.pending[here]
        self.cached = ctx.cached[here]

    def reset(self, streams=None):
        self._shared.ctx.reset(self._streams)  # the exact context's positions too

    def step(self, rows) -> np.ndarray:
        logits, self.hidden = self._shared.step(self.index,
                                                np.asarray(rows) + self._streams.start)
        return logits

    def close(self):
        pass


class SharedContext:
    """One context of ``lanes`` blocks of ``streams`` streams, stepped together."""

    def __init__(self, engine, config, threads, lanes: int):
        if config.max_pending != 1:
            raise ValueError("skip streams cannot share forward passes (their rows depend on "
                             "slots after their own: engines/exact/context.py)")
        self.streams, self.lanes = config.streams, lanes
        self.ctx = engine.model.context(lanes * config.streams, config.window, config.slide,
                                        config.sink, threads, 1, bool(config.cache_size))
        self._free = list(range(lanes))
        self._active: set = set()
        self._asked: dict = {}  # lane -> its rows in the shared context, for this step
        self._answers: dict = {}  # lane -> (logits, hidden)
        self._cond = threading.Condition()
        self.steps = 0  # forward passes run (each for every lane that asked)
        self.cancelled = False

    @contextlib.contextmanager
    def lane(self):
        with self._cond:
            while not self._free:
                self._cond.wait()
            index = self._free.pop(0)
            self._active.add(index)
        try:
            yield Lane(self, index)
        finally:
            with self._cond:
                self._active.discard(index)
                self._asked.pop(index, None)
                self._free.append(index)
                self._run_if_all_asked()
                self._cond.notify_all()

    def step(self, index: int, rows: np.ndarray):
        with self._cond:
            self._asked[index] = rows
            self._run_if_all_asked()
            while index not in self._answers and not self.cancelled:
                self._cond.wait()
            answer = self._answers.pop(index, None)
            if self.cancelled:
                raise NacrithError("coding cancelled: the runner was closed")
            if isinstance(answer, Exception):
                raise answer
            return answer

    def _run_if_all_asked(self):
        if not self._asked or len(self._asked) < len(self._active):
            return
        order = sorted(self._asked)  # lanes' streams ascend with their index
        rows = np.concatenate([self._asked[i] for i in order])
        try:
            logits, hidden = self.ctx.step(rows), self.ctx.hidden
        except Exception as exc:  # every lane of this step raises it
            self._answers.update(dict.fromkeys(order, exc))
        else:
            start = 0
            for i in order:
                n = len(self._asked[i])
                self._answers[i] = (logits[start:start + n],
                                    hidden[start:start + n] if hidden is not None else None)
                start += n
        self._asked.clear()
        self.steps += 1
        self._cond.notify_all()

    def cancel(self):
        """Every lane's next step raises: the threads coding blocks stop soon."""
        with self._cond:
            self.cancelled = True
            self._cond.notify_all()

    def close(self):
        self.ctx.close()


class Threads:
    """Blocks coded by ``workers`` threads of this process, their streams in one forward
    pass per step (the exact engine); results in order, at most ``2 * workers`` in flight.
    The bytes are those of one block at a time.  ``memlimit`` bounds the whole process:
    fewer threads are used where ``workers`` blocks at once would need more (xz -T's
    rule), and MemoryLimitError is raised where even one would.  ``share_passes`` False
    (an encoder): each block in a context of its own, where it computes chunks of its
    known tokens per pass (schedule.run_prefilled), more rows a pass than lanes give."""

    def __init__(self, engine, config, workers: int, threads=None, progress=None,
                 memlimit: int = 0, share_passes: bool = True):
        if memlimit:  # as xz -T does: fewer blocks at once where all would not fit
            workers = max(1, min(workers, memlimit // engine.check_memory(config, 0)))
        engine.check_memory(config, memlimit, blocks=workers)  # before anything is allocated
        self.workers, self.config, self.limit = workers, config, 2 * workers
        self.shared = SharedContext(engine, config, threads, workers) if share_passes else None
        self._local = threading.local()
        self._engine, self._threads = engine, threads
        self._progress_lock = threading.Lock()
        self._progress = progress
        self._executor = cf.ThreadPoolExecutor(workers, thread_name_prefix="nacrith-block")
        self._futures = collections.deque()
        self.stats = new_stats()

    def __len__(self):
        return len(self._futures)

    def _tick(self, n: int):
        with self._progress_lock:
            self._progress(n)

    def _coder(self) -> BlockCoder:
        coder = getattr(self._local, "coder", None)
        if coder is None:
            coder = self._local.coder = BlockCoder(self._engine, self.config, self._threads,
                                                   self._tick if self._progress else None,
                                                   shared=self.shared)
        return coder

    def _task(self, kind: str, item):
        coder = self._coder()
        coder.stats = new_stats()
        return getattr(coder, kind)(item), coder.stats

    def submit(self, kind: str, item):
        self._futures.append(self._executor.submit(self._task, kind, item))

    def results(self, wait: bool = False):
        while self._futures:
            oldest = self._futures[0]
            if not oldest.done() and not (wait or len(self._futures) > self.limit):
                return
            self._futures.popleft()
            result, stats = oldest.result()
            add_stats(self.stats, stats)
            yield result

    def close(self):
        if self.shared is not None and any(not future.done() for future in self._futures):
            self.shared.cancel()  # an error or an interrupt: nobody reads those blocks
        self._futures.clear()
        self._executor.shutdown(wait=True, cancel_futures=True)
        if self.shared is not None:
            self.shared.close()
