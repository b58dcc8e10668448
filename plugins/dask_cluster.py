"""nacrith over a Dask cluster: many files, and big files, coded by many workers.

    from nacrith_codec.plugins.dask_cluster import compress_files, decompress_files

    report = compress_files(["s3://corpus/logs/**/*.log"], "s3://corpus/packed/",
                            client="tcp://scheduler:8786")
    print(report.summary())
    decompress_files(["s3://corpus/packed/"], "s3://corpus/restored/", client=...)

Every block of every file is one Dask task (``dask_tasks``), so a single big file
spreads over the workers as well as many small ones; a file's stream is assembled
here, in block order, and is byte for byte what ``nacrith FILE`` writes on one
machine of the workers' kind.  Workers read their blocks from storage themselves
(fsspec URLs the workers can reach; inputs on the client's memory:// filesystem are
sent to them), each worker process loads the model once, and at most ``in_flight``
blocks are being coded or waiting to be written, so the client's memory stays
bounded whatever the corpus.

The work is the core's (nacrith_codec.corpus: the plan of every file's block tasks,
the tasks, the report); this module submits the tasks to Dask and hands their results
back in order.  An output appears only complete (nacrith_codec.output.Output: a hidden
``.nacrith-NAME.XXXXXXXX.part`` beside its target, renamed when its last block is
written, or an object store's multipart upload); a file that fails leaves nothing.  Dask re-runs the tasks of a worker that
died (the same bytes come out); errors of the data fail their file only, and the
returned ``Report`` lists every input with its output, sizes, bits per byte, and the
error of each file that failed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
import time

import fsspec
from fsspec.callbacks import NoOpCallback
from dask.base import tokenize
from distributed import Client, LocalCluster, as_completed
from distributed.comm import get_address_host

from nacrith_codec.config import CodecConfig
from nacrith_codec.container import SUFFIX
from nacrith_codec.corpus.plan import Job, expand, plan_compress, plan_decompress
from nacrith_codec.corpus.report import FileReport, Report
from nacrith_codec.engines.identity import Identity
from nacrith_codec.engines.llamacpp import cores
from nacrith_codec.errors import EnvironmentMismatchError, ModelMismatchError

from . import dask_tasks
from .dask_tasks import Settings

__all__ = ["FileReport", "Report", "compress_files", "connect", "decompress_files"]


@dataclasses.dataclass
class _Tracking:
    """What the runner keeps of a job's tasks while they run."""

    futures: dict = dataclasses.field(default_factory=dict)  # block -> Future in flight
    attempts: dict = dataclasses.field(default_factory=dict)  # task key -> workers running it
    workers: set = dataclasses.field(default_factory=set)  # workers that coded its blocks


# -- the run ----------------------------------------------------------------------------

class _Runner:
    """Submits the jobs' blocks, at most ``in_flight`` unwritten at a time, and gives each
    job its blocks' results as they come back.  What it keeps per task (owner, progress,
    workers) lives only while the task does."""

    def __init__(self, client: Client, jobs: list, retries: int, in_flight: int, callback):
        self.client, self.jobs, self.retries, self.in_flight = client, jobs, retries, in_flight
        self.callback = callback
        self._lock = threading.Lock()
        self._done_bytes: dict = {}  # task key -> bytes reported done (never decreases)
        self._owner: dict = {}  # task key -> (job, block number)
        self._tracking = {id(job): _Tracking() for job in jobs}
        self._unwritten = 0

    def _on_event(self, event):
        _, message = event
        key, worker = message.get("key"), message.get("worker")
        with self._lock:
            if key not in self._owner:
                return
            job, _ = self._owner[key]
            self._tracking[id(job)].attempts.setdefault(key, set()).add(worker)
            self._advance(key, message.get("bytes", 0))

    def _advance(self, key, done: int):
        delta = done - self._done_bytes.get(key, 0)
        if delta > 0:
            self._done_bytes[key] = done
            self.callback.relative_update(delta)

    def _pending(self):
        seq = 0
        for job in self.jobs:
            for i in range(job.blocks):
                if job.report.status == "failed":
                    break
                yield job, i, seq
                seq += 1

    def _submit(self, queue, completed):
        while self._unwritten < self.in_flight:
            item = next(queue, None)
            if item is None:
                return
            job, i, seq = item
            kind, args = job.task(i)
            function = dask_tasks.FUNCTIONS[kind]
            if job.ship is not None:  # read now, so that only the window is held here
                fs, path = job.ship
                source = args[1]
                args = (args[0], dataclasses.replace(source, data=fs.cat_file(
                    path, source.start, source.start + source.length)), *args[2:])
            key = f"{dask_tasks.NAMES[function]}-{tokenize(function, args)}"
            future = self.client.submit(function, *args, key=key, retries=self.retries,
                                        priority=-seq, pure=False)
            with self._lock:
                self._owner[key] = job, i
            self._tracking[id(job)].futures[i] = future
            completed.add(future)
            self._unwritten += 1

    def run(self):
        self.client.subscribe_topic(dask_tasks.PROGRESS_TOPIC, self._on_event)
        try:
            self._run()
        except BaseException as exc:  # ^C, a lost scheduler: no output is left half written
            for job in self.jobs:
                if job.report.status == "ok" and job.next < job.blocks:
                    self._fail(job, exc)
            raise
        finally:
            self.client.unsubscribe_topic(dask_tasks.PROGRESS_TOPIC)
        for job in self.jobs:
            job.report.workers = len(self._tracking[id(job)].workers)

    def _run(self):
        queue, completed = self._pending(), as_completed()
        for job in self.jobs:
            if not job.blocks and job.report.status == "ok":
                self._write(job, None, b"")  # empty files: nothing to code
        self._submit(queue, completed)
        for future in completed:
            self._collect(future)
            self._submit(queue, completed)

    def _collect(self, future):
        with self._lock:
            job, i = self._owner.pop(future.key)
            track = self._tracking[id(job)]
            workers = track.attempts.pop(future.key, set())
        track.workers |= workers
        job.report.rerun_blocks += len(workers) > 1
        if track.futures.pop(i, None) is None:  # its job failed and dropped it
            return
        try:
            done = future.result()
        except Exception as exc:  # noqa: BLE001 - retries exhausted, or a worker lost too often
            done = dask_tasks.Done(error=exc)
        with self._lock:
            self._advance(future.key, job.size(i) or len(done.data))
            self._done_bytes.pop(future.key, None)
        if done.error is not None:
            self._fail(job, done.error)
        else:
            self._write(job, i, done.data)

    def _write(self, job: Job, i, data: bytes):
        before = job.next
        try:
            job.accept(i, data)
        except Exception as exc:  # noqa: BLE001 - storage errors fail this file only
            self._unwritten -= job.next - before
            self._fail(job, exc)
            return
        self._unwritten -= job.next - before

    def _fail(self, job: Job, error: Exception):
        if job.report.status == "failed":
            return
        track = self._tracking[id(job)]
        self._unwritten -= len(track.futures) + len(job.ready)
        job.fail(error)
        with contextlib.suppress(Exception):  # the scheduler may be gone
            self.client.cancel(list(track.futures.values()))
        track.futures.clear()


@contextlib.contextmanager
def connect(client=None, workers: int | None = None, silence_logs: int = logging.WARNING):
    """The user's Client as it is, a Client of a scheduler address, or a Client of a
    LocalCluster of ``workers`` processes on this machine (default: one per core, each
    with one Dask thread: one worker per core codes faster than fewer, wider ones)."""
    if isinstance(client, Client):
        yield client
    elif isinstance(client, str):
        with Client(client) as c:
            yield c
    elif client is None:
        with LocalCluster(n_workers=workers or cores(), threads_per_worker=1, processes=True,
                          silence_logs=silence_logs) as cluster, Client(cluster) as c:
            yield c
    else:
        raise TypeError(f"client must be a distributed.Client, a scheduler address or None, "
                        f"not {type(client).__name__}")


def _settings(client: Client, model, n_gpu_layers: int, **fields) -> tuple:
    """Settings for a run, after checking that every worker has the same model and, for
    the llama.cpp engine, the same environment (their blocks must decode anywhere the
    stream says they will; the exact engine's decode anywhere, so workers of any CPU share
    a job).  Decoding checks each stream against its own header instead."""
    client.wait_for_workers(1)
    engine = fields["config"].engine if fields.get("config") is not None else "exact"
    described = {address: Identity(**d) for address, d in client.run(
        dask_tasks.describe, model, n_gpu_layers, engine).items()}
    first_address, first = sorted(described.items())[0]
    try:
        for address, identity in sorted(described.items()):
            identity.require(first, f"worker {first_address}", f"worker {address}")
    except (ModelMismatchError, EnvironmentMismatchError) as exc:
        raise type(exc)(f"the workers differ, so their blocks would not decode alike: "
                        f"{exc}") from None
    hosts: dict = {}
    for address, nthreads in client.nthreads().items():
        host = get_address_host(address)
        hosts[host] = hosts.get(host, 0) + nthreads
    settings = Settings(model=None if model is None else str(model), n_gpu_layers=n_gpu_layers,
                        sha256=first.sha256, env=first.env,
                        host_threads=tuple(sorted(hosts.items())),
                        progress_every=max(0.5, sum(hosts.values()) / 200), **fields)
    return settings, first.model_name, len(described), sum(hosts.values())


def _jobs(kind: str, items, dest, storage_options: dict, existing: str, settings, model_name,
          ship_inputs) -> tuple[list, list]:
    """The plan of every input, and the reports of all (skipped and failed ones too)."""
    target_fs, root = fsspec.core.url_to_fs(dest, **storage_options)
    plan = plan_compress if kind == "compress" else plan_decompress
    jobs, reports = [], []
    for item in items:
        job = plan(item, target_fs, root.rstrip("/"), settings, model_name, storage_options,
                   ship_inputs)
        job.overwrite = existing == "overwrite"
        reports.append(job.report)
        if job.report.status == "ok" and target_fs.exists(job.target):
            if existing == "skip":
                job.report.status = "skipped"
            elif existing == "error":
                job.report.fail(FileExistsError(f"{job.report.target} exists (overwrite it "
                                                "with existing='overwrite' / -f, keep it "
                                                "with 'skip')"))
        if job.report.status == "ok":
            jobs.append(job)
    return jobs, reports


def _run(kind: str, inputs, dest, client, workers, storage_options, existing, retries, in_flight,
         callback, ship_inputs, **settings_fields) -> Report:
    if existing not in ("error", "overwrite", "skip"):
        raise ValueError("existing must be 'error', 'overwrite' or 'skip'")
    storage_options = dict(storage_options or {})
    start = time.perf_counter()
    items = expand(inputs, storage_options, "" if kind == "compress" else SUFFIX)
    with connect(client, workers) as c:
        settings, model_name, n_workers, n_threads = _settings(c, **settings_fields)
        jobs, reports = _jobs(kind, items, dest, storage_options, existing, settings,
                              model_name, ship_inputs)
        callback = callback or NoOpCallback()
        callback.set_size(sum(j.report.bytes_in if j.report.compressing else j.report.bytes_out or 0
                              for j in jobs))
        _Runner(c, jobs, retries, in_flight or 4 * n_threads, callback).run()
        facts = [f for f in c.run(_worker_facts, on_error="return").values()
                 if isinstance(f, dict)]  # a worker lost at the end takes its facts along
    return Report(reports, time.perf_counter() - start, n_workers,
                  sum(f["models_loaded"] for f in facts),
                  max((f["peak_rss"] for f in facts), default=0))


def _worker_facts() -> dict:
    """What a worker process has loaded, and its peak memory (bytes)."""
    import resource

    from nacrith_codec.engines import Engine
    return {"models_loaded": Engine.loads,
            "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}


def compress_files(inputs, dest: str, *, client=None, workers: int | None = None,
                   model=None, config: CodecConfig | None = None, storage_options=None,
                   existing: str = "error", verify: bool = False, retries: int = 2,
                   in_flight: int | None = None, callback=None, threads: int | None = None,
                   n_gpu_layers: int = 0, device: str = "cpu", ship_inputs: bool | None = None,
                   **options) -> Report:
    """Compress every file named by ``inputs`` (paths or fsspec URLs of files,
    directories, globs) to ``dest`` (a directory URL): ``NAME`` becomes ``dest/NAME.nc``,
    the path below the input's directory or glob root kept.

    ``client``: a ``distributed.Client``, a scheduler address, or None for a
    LocalCluster of ``workers`` processes (default: one per core) that ends with the
    call.  ``model`` must name a file on the workers (None: each worker's default
    model; every worker must have the same file).  ``config`` and ``options`` as for
    ``NacrithCompressor``; ``verify`` decodes every block on its worker after coding
    it.  ``existing``: what to do about outputs that exist: "error" (that file
    fails), "overwrite" or "skip" (resuming an interrupted run).  ``retries``: how
    often a task that raised (storage, network) is tried again.  ``in_flight``: blocks
    in flight or waiting to be written (default 4 per Dask thread).  ``callback``: an
    fsspec Callback (``fsspec.callbacks.TqdmCallback()`` for a progress bar): its size
    is set to the bytes to code, and it is advanced by each byte coded.  ``ship_inputs``:
    send the input bytes from the client to the workers instead of letting them read
    them (default: only for memory://).  ``device``: where each worker runs the exact
    engine ("auto": its GPU when it has one, else its CPU; a mixed cluster writes the
    same bytes).  Returns a Report; it does not raise for a file that failed.
    """
    config = (config or CodecConfig()).replace(**options)
    return _run("compress", inputs, dest, client, workers, storage_options, existing, retries,
                in_flight, callback, ship_inputs, model=model, n_gpu_layers=n_gpu_layers,
                config=config, threads=threads, verify=verify, device=device)


def decompress_files(inputs, dest: str, *, client=None, workers: int | None = None, model=None,
                     storage_options=None, existing: str = "error", retries: int = 2,
                     in_flight: int | None = None, callback=None, threads: int | None = None,
                     n_gpu_layers: int = 0, device: str = "cpu",
                     ship_inputs: bool | None = None) -> Report:
    """Decompress every file named by ``inputs`` (files, globs, and the ``.nc`` files
    below directories) to ``dest``: ``NAME.nc`` becomes ``dest/NAME``.  A stream's blocks are decoded
    on the workers at once, found through its index (its END record); a file without
    one (concatenated streams) is decoded by one task.  Every block is verified.
    Options as for ``compress_files``; ``callback`` counts original bytes.
    """
    return _run("decompress", inputs, dest, client, workers, storage_options, existing, retries,
                in_flight, callback, ship_inputs, model=model, n_gpu_layers=n_gpu_layers,
                threads=threads, device=device)
