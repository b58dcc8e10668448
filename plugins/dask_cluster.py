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

An output appears only complete: it is written under a hidden temporary name beside
its target (``.NAME.nacrith-XXXXXXXX.part``) and renamed when its last block is
written; a file that fails leaves nothing.  Dask re-runs the tasks of a worker that
died (the same bytes come out); errors of the data fail their file only, and the
returned ``Report`` lists every input with its output, sizes, bits per byte, and the
error of each file that failed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import logging
import threading
import time
import uuid

import fsspec
from fsspec.callbacks import NoOpCallback
from dask.base import tokenize
from distributed import Client, LocalCluster, as_completed
from distributed.comm import get_address_host

from nacrith_codec import container
from nacrith_codec.api import header_for
from nacrith_codec.config import CodecConfig
from nacrith_codec.errors import (CorruptError, EnvironmentMismatchError, ModelMismatchError,
                                  NacrithError)
from nacrith_codec.llm import cores
from nacrith_codec.random_access import read_index

from . import dask_tasks
from .dask_tasks import Settings, Source

SUFFIX = container.SUFFIX
#: Filesystems whose contents live in the client process: workers get the bytes.
_CLIENT_ONLY = {"memory"}


@dataclasses.dataclass
class FileReport:
    """One input of a run and what became of it."""

    source: str
    target: str
    compressing: bool = True
    status: str = "ok"  # ok, failed or skipped
    bytes_in: int = 0
    bytes_out: int | None = 0
    blocks: int = 0
    workers: int = 0  # how many workers coded its blocks
    rerun_blocks: int = 0  # blocks Dask ran again after losing a worker
    error: str | None = None

    @property
    def bpb(self) -> float | None:
        """Bits per byte of the original: compressed size x 8 / original size."""
        if self.status != "ok":
            return None
        return _bpb(self.bytes_in, self.bytes_out, self.compressing)


def _bpb(bytes_in: int, bytes_out: int, compressing: bool) -> float | None:
    original, packed = (bytes_in, bytes_out) if compressing else (bytes_out, bytes_in)
    return 8 * packed / original if original else None


@dataclasses.dataclass
class Report:
    """Every input of a run, with totals; ``ok`` unless a file failed."""

    files: list
    seconds: float = 0.0
    workers: int = 0
    models_loaded: int = 0  # by the workers at the end of the run (one each, if they coded)
    worker_peak_rss: int = 0  # bytes: the largest peak resident memory of a worker process

    @property
    def ok(self) -> bool:
        return all(f.status != "failed" for f in self.files)

    @property
    def failed(self) -> list:
        return [f for f in self.files if f.status == "failed"]

    def totals(self) -> dict:
        done = [f for f in self.files if f.status == "ok"]
        bytes_in = sum(f.bytes_in for f in done)
        bytes_out = sum(f.bytes_out for f in done)
        compressing = all(f.compressing for f in self.files)
        original = bytes_in if compressing else bytes_out
        return {"files": len(self.files), "ok": len(done), "failed": len(self.failed),
                "skipped": sum(f.status == "skipped" for f in self.files),
                "bytes_in": bytes_in, "bytes_out": bytes_out,
                "bpb": _bpb(bytes_in, bytes_out, compressing),
                "rerun_blocks": sum(f.rerun_blocks for f in self.files),
                "seconds": round(self.seconds, 3), "workers": self.workers,
                "models_loaded": self.models_loaded,
                "worker_peak_rss_mib": round(self.worker_peak_rss / 2**20, 1),
                "bytes_per_second": round(original / self.seconds, 1) if self.seconds else None}

    def as_dict(self) -> dict:
        return {"totals": self.totals(),
                "files": [{**dataclasses.asdict(f), "bpb": f.bpb} for f in self.files]}

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=1)

    def summary(self) -> str:
        lines = []
        for f in self.files:
            bpb = f", {f.bpb:.3f} bits/byte" if f.bpb is not None else ""
            what = (f"{f.bytes_in} -> {f.bytes_out} bytes{bpb}"
                    if f.status == "ok" else f.error if f.status == "failed" else "skipped")
            rerun = f" ({f.rerun_blocks} blocks re-run)" if f.rerun_blocks else ""
            lines.append(f"{f.source}: {f.status}: {what}{rerun} -> {f.target}")
        t = self.totals()
        bpb = f", {t['bpb']:.3f} bits/byte" if t["bpb"] is not None else ""
        lines.append(f"{t['ok']} of {t['files']} files ok ({t['failed']} failed, {t['skipped']} "
                     f"skipped): {t['bytes_in']} -> {t['bytes_out']} bytes{bpb}, "
                     f"{t['seconds']:.1f} s, {t['bytes_per_second'] or 0:.0f} bytes/s on "
                     f"{t['workers']} workers (peak {t['worker_peak_rss_mib']:.0f} MiB each)")
        return "\n".join(lines)


# -- planning: inputs -> (source, target) pairs ----------------------------------------

@dataclasses.dataclass
class _Input:
    fs: object
    path: str
    size: int
    relative: str  # the name below its root, kept below the destination


def _expand(inputs, storage_options: dict, suffix: str = "") -> list:
    """Every file named by ``inputs``: files, globs, and directories (every file below
    them whose name ends with ``suffix``).  An input that names no file is an error."""
    found, seen = [], set()
    for spec in [inputs] if isinstance(inputs, str) else inputs:
        fs, path = fsspec.core.url_to_fs(spec, **storage_options)
        magic = [path.index(c) for c in "*?[" if c in path]
        if magic:  # a glob: names are kept below the folder before its first wildcard
            root = path[:min(magic)].rpartition("/")[0]
            matches, none = fs.glob(path, detail=True), "matches no file"
        elif fs.isdir(path):
            root = path.rstrip("/")
            matches = {k: v for k, v in fs.find(path, detail=True).items() if k.endswith(suffix)}
            none = f"holds no {'*' + suffix + ' ' if suffix else ''}file"
        else:
            root, matches, none = path.rpartition("/")[0], {path: fs.info(path)}, "is no file"
        files = {k: v for k, v in matches.items() if v["type"] == "file"}
        if not files:
            raise FileNotFoundError(f"{spec} {none}")
        for name, info in sorted(files.items()):
            relative = name[len(root):].lstrip("/") if root else name.lstrip("/")
            if relative in seen:
                raise ValueError(f"two inputs would have the same output name {relative!r}")
            seen.add(relative)
            found.append(_Input(fs, name, info["size"], relative))
    return found


@dataclasses.dataclass
class _Job:
    """One file: its blocks to submit, then its output written in block order."""

    report: FileReport
    target_fs: object
    target: str
    blocks: int  # tasks, one per block
    task: object  # block number -> (function, args), args[1] being the block's Source
    size: object  # block number -> its original bytes (None: known once it is decoded)
    writer: "container.StreamWriter | None" = None  # compression: the stream's framing
    index: object = None  # decompression by blocks: the file's random-access Index
    digests: list = dataclasses.field(default_factory=list)  # of each block decoded, in order
    ship: tuple | None = None  # (fs, path) the client reads blocks from, for the workers
    next: int = 0
    ready: dict = dataclasses.field(default_factory=dict)
    futures: dict = dataclasses.field(default_factory=dict)  # block -> Future in flight
    attempts: dict = dataclasses.field(default_factory=dict)  # task key -> workers running it
    workers: set = dataclasses.field(default_factory=set)  # workers that coded its blocks
    out: "_Output | None" = None


class _Output:
    """An output file under a hidden temporary name, renamed to its target when complete."""

    def __init__(self, fs, target: str):
        folder, _, name = target.rpartition("/")
        self.fs, self.target = fs, target
        self.temp = f"{folder}/.{name}.nacrith-{uuid.uuid4().hex[:8]}.part"
        if folder:
            fs.makedirs(folder, exist_ok=True)
        self.file = fs.open(self.temp, "wb")
        self.size = 0

    def write(self, data: bytes):
        self.file.write(data)
        self.size += len(data)

    def commit(self):
        self.file.close()
        self.fs.mv(self.temp, self.target)

    def discard(self):
        with contextlib.suppress(Exception):
            self.file.close()
        with contextlib.suppress(Exception):
            self.fs.rm(self.temp)


def _shipped(item: _Input, ship: bool | None) -> tuple | None:
    """Where the client reads an input's blocks for the workers, if it does."""
    if ship is None:
        protocols = item.fs.protocol if isinstance(item.fs.protocol, tuple) else (item.fs.protocol,)
        ship = bool(_CLIENT_ONLY & set(protocols))
    return (item.fs, item.path) if ship else None


# -- the run ----------------------------------------------------------------------------

class _Runner:
    """Submits the jobs' blocks, at most ``in_flight`` unwritten at a time, and writes
    each file's output in block order as its blocks come back.  What it keeps per task
    (owner, progress, workers) lives only while the task does."""

    def __init__(self, client: Client, jobs: list, retries: int, in_flight: int, callback,
                 finish):
        self.client, self.jobs, self.retries, self.in_flight = client, jobs, retries, in_flight
        self.callback, self.finish = callback, finish
        self._lock = threading.Lock()
        self._done_bytes: dict = {}  # task key -> bytes reported done (never decreases)
        self._owner: dict = {}  # task key -> (job, block number)
        self._unwritten = 0

    def _on_event(self, event):
        _, message = event
        key, worker = message.get("key"), message.get("worker")
        with self._lock:
            if key not in self._owner:
                return
            job, _ = self._owner[key]
            job.attempts.setdefault(key, set()).add(worker)
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
            function, args = job.task(i)
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
            job.futures[i] = future
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
            job.report.workers = len(job.workers)

    def _run(self):
        queue, completed = self._pending(), as_completed()
        for job in self.jobs:
            if not job.blocks and job.report.status == "ok":
                self._write(job)  # empty files: nothing to code
        self._submit(queue, completed)
        for future in completed:
            with self._lock:
                job, i = self._owner.pop(future.key)
                workers = job.attempts.pop(future.key, set())
            job.workers |= workers
            job.report.rerun_blocks += len(workers) > 1
            if job.futures.pop(i, None) is None:  # its job failed and dropped it
                continue
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
                job.ready[i] = done.data
                self._write(job)
            self._submit(queue, completed)

    def _write(self, job: _Job):
        try:
            if job.out is None:
                job.out = _Output(job.target_fs, job.target)
                if job.writer is not None:
                    job.out.write(job.writer.head)
            while job.next in job.ready:
                data = job.ready.pop(job.next)
                if job.writer is not None:
                    data = job.writer.block(data, job.size(job.next))
                elif job.index is not None:
                    job.digests.append(container.digest(data))
                job.out.write(data)
                job.next += 1
                self._unwritten -= 1
            if job.next == job.blocks:
                self.finish(job)
                job.out.commit()
                job.report.bytes_out = job.out.size
        except Exception as exc:  # noqa: BLE001 - storage errors fail this file only
            self._fail(job, exc)

    def _fail(self, job: _Job, error: Exception):
        if job.report.status == "failed":
            return
        job.report.status, job.report.error = "failed", f"{type(error).__name__}: {error}"
        self._unwritten -= len(job.futures) + len(job.ready)
        with contextlib.suppress(Exception):  # the scheduler may be gone
            self.client.cancel(list(job.futures.values()))
        job.futures.clear()
        job.ready.clear()
        if job.out is not None:
            job.out.discard()


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
    described = client.run(dask_tasks.describe, model, n_gpu_layers, engine)
    kinds = {(d["sha256"], d["env"]) for d in described.values()}
    if len(kinds) > 1:
        error = (ModelMismatchError if len({sha for sha, _ in kinds}) > 1
                 else EnvironmentMismatchError)
        raise error("the workers differ in model or environment, so their blocks would not "
                    "decode alike: " + "; ".join(
                        f"{addr}: {d['model_name']} sha256 {d['sha256'][:12]}..., {d['env']}"
                        for addr, d in sorted(described.items())))
    (sha, env), = kinds
    hosts: dict = {}
    for address, nthreads in client.nthreads().items():
        host = get_address_host(address)
        hosts[host] = hosts.get(host, 0) + nthreads
    first = next(iter(described.values()))
    settings = Settings(model=None if model is None else str(model), n_gpu_layers=n_gpu_layers,
                        sha256=sha, env=env, host_threads=tuple(sorted(hosts.items())),
                        progress_every=max(0.5, sum(hosts.values()) / 200), **fields)
    return settings, first["model_name"], len(described), sum(hosts.values())


def _run(kind: str, inputs, dest, client, workers, storage_options, existing, retries, in_flight,
         callback, plan, **settings_fields) -> Report:
    if existing not in ("error", "overwrite", "skip"):
        raise ValueError("existing must be 'error', 'overwrite' or 'skip'")
    storage_options = dict(storage_options or {})
    start = time.perf_counter()
    items = _expand(inputs, storage_options, "" if kind == "compress" else SUFFIX)
    target_fs, root = fsspec.core.url_to_fs(dest, **storage_options)
    with connect(client, workers) as c:
        settings, model_name, n_workers, n_threads = _settings(c, **settings_fields)
        jobs, reports = [], []
        for item in items:
            job = plan(item, target_fs, root.rstrip("/"), settings, model_name)
            reports.append(job.report)
            if job.report.status == "ok" and target_fs.exists(job.target):
                if existing == "skip":
                    job.report.status = "skipped"
                elif existing == "error":
                    job.report.status = "failed"
                    job.report.error = (f"FileExistsError: {job.report.target} exists (overwrite "
                                        "it with existing='overwrite' / -f, keep it with 'skip')")
            if job.report.status == "ok":
                jobs.append(job)
        callback = callback or NoOpCallback()
        callback.set_size(sum(j.report.bytes_in if j.report.compressing else j.report.bytes_out or 0
                              for j in jobs))
        runner = _Runner(c, jobs, retries, in_flight or 4 * n_threads, callback,
                         _end_record if kind == "compress" else _check_size)
        runner.run()
        facts = [f for f in c.run(_worker_facts, on_error="return").values()
                 if isinstance(f, dict)]  # a worker lost at the end takes its facts along
    return Report(reports, time.perf_counter() - start, n_workers,
                  sum(f["models_loaded"] for f in facts),
                  max((f["peak_rss"] for f in facts), default=0))


def _worker_facts() -> dict:
    """What a worker process has loaded, and its peak memory (bytes)."""
    import resource

    from nacrith_codec.engine import Engine
    return {"models_loaded": Engine.loads,
            "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}


def _end_record(job: _Job):
    job.out.write(job.writer.end())


def _check_size(job: _Job):
    """A decoded file is published only if it has its size and, for each stream, the
    content its END record covers."""
    if job.report.bytes_out is not None and job.out.size != job.report.bytes_out:
        raise CorruptError(f"decoded {job.out.size} bytes where the stream holds "
                           f"{job.report.bytes_out}")
    if job.index is not None:
        for n, blocks in itertools.groupby(zip(job.index.stream, job.digests), lambda b: b[0]):
            job.index.check_content(n, [digest for _, digest in blocks])


def compress_files(inputs, dest: str, *, client=None, workers: int | None = None,
                   model=None, config: CodecConfig | None = None, storage_options=None,
                   existing: str = "error", verify: bool = False, retries: int = 2,
                   in_flight: int | None = None, callback=None, threads: int | None = None,
                   n_gpu_layers: int = 0, ship_inputs: bool | None = None, **options) -> Report:
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
    them (default: only for memory://).  Returns a Report; it does not raise for a
    file that failed.
    """
    config = (config or CodecConfig()).replace(**options)
    so = dict(storage_options or {})

    def plan(item: _Input, target_fs, root: str, settings: Settings, model_name: str) -> _Job:
        target = f"{root}/{item.relative}{SUFFIX}"
        report = FileReport(item.fs.unstrip_protocol(item.path), target_fs.unstrip_protocol(target),
                            bytes_in=item.size)
        writer = container.StreamWriter(header_for(config, settings.sha256, model_name,
                                                   settings.env, item.size))
        url, step = item.fs.unstrip_protocol(item.path), config.block_size

        def size(i):
            return min(step, item.size - i * step)

        def task(i):
            return dask_tasks.compress_block, (settings, Source(url, i * step, size(i), so),
                                               writer.head, i)

        report.blocks = -(-item.size // step)
        return _Job(report, target_fs, target, report.blocks, task, size, writer=writer,
                    ship=_shipped(item, ship_inputs))

    return _run("compress", inputs, dest, client, workers, so, existing, retries, in_flight,
                callback, plan, model=model, n_gpu_layers=n_gpu_layers, config=config,
                threads=threads, verify=verify)


def decompress_files(inputs, dest: str, *, client=None, workers: int | None = None, model=None,
                     storage_options=None, existing: str = "error", retries: int = 2,
                     in_flight: int | None = None, callback=None, threads: int | None = None,
                     n_gpu_layers: int = 0, ship_inputs: bool | None = None) -> Report:
    """Decompress every file named by ``inputs`` (files, globs, and the ``.nc`` files
    below directories) to ``dest``: ``NAME.nc`` becomes ``dest/NAME``.  A stream's blocks are decoded
    on the workers at once, found through its index (its END record); a file without
    one (concatenated streams) is decoded by one task.  Every block is verified.
    Options as for ``compress_files``; ``callback`` counts original bytes.
    """
    so = dict(storage_options or {})

    def plan(item: _Input, target_fs, root: str, settings: Settings, model_name: str) -> _Job:
        name = item.relative[:-len(SUFFIX)] if item.relative.endswith(SUFFIX) else item.relative
        target = f"{root}/{name}"
        report = FileReport(item.fs.unstrip_protocol(item.path), target_fs.unstrip_protocol(target),
                            compressing=False, bytes_in=item.size)
        job = _Job(report, target_fs, target, 0, None, None, ship=_shipped(item, ship_inputs))
        url = item.fs.unstrip_protocol(item.path)
        try:
            if not item.relative.endswith(SUFFIX):
                raise ValueError(f"unknown suffix (expected {SUFFIX})")
            with item.fs.open(item.path, "rb") as f:
                index = read_index(f)
            if index is None:  # decoded in one piece; its size is known at the end
                job.blocks, report.bytes_out, job.size = 1, None, lambda i: None
                job.task = lambda i: (dask_tasks.decompress_stream,
                                      (settings, Source(url, 0, item.size, so)))
            else:  # the model is checked by each block's decoder, as on one machine
                job.index, job.blocks, report.bytes_out = index, index.blocks, index.size
                job.size = lambda i: index.raw[i + 1] - index.raw[i]
                job.task = lambda i: (dask_tasks.decompress_block, (
                    settings, Source(url, index.offsets[i], index.ends[i] - index.offsets[i], so),
                    index.header(i), job.size(i), index.number(i)))
        except (NacrithError, ValueError, OSError) as exc:
            report.status, report.error = "failed", f"{type(exc).__name__}: {exc}"
        report.blocks = job.blocks
        return job

    return _run("decompress", inputs, dest, client, workers, so, existing, retries, in_flight,
                callback, plan, model=model, n_gpu_layers=n_gpu_layers, threads=threads)
