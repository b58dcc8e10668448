"""From inputs to jobs: which files, where their outputs go, and each file's block tasks.

A job is one file: its blocks as tasks (``task(i)`` -> (kind, args) with kind
"encode", "decode" or "decode_stream", the functions of tasks.py), and its output
written in block order as their results come back (``accept``), framed by the
codec's StreamWriter when compressing and checked against the stream's END records
when decompressing, then published whole (output.Output) or not at all.
"""

from __future__ import annotations

import dataclasses
import itertools

import fsspec

from .. import api, container
from ..errors import CorruptError, NacrithError
from ..output import Output, protocols
from .report import FileReport
from .tasks import Settings, Source

#: Filesystems whose contents live in the client process: workers get the bytes.
CLIENT_ONLY = {"memory"}


@dataclasses.dataclass
class Input:
    fs: object
    path: str
    size: int
    relative: str  # the name below its root, kept below the destination


def expand(inputs, storage_options: dict, suffix: str = "") -> list:
    """Every file named by ``inputs``: files, globs, and directories (every file below
    them whose name ends with ``suffix``).  An input that names no file is an error."""
    found, seen = [], set()
    for spec in [inputs] if isinstance(inputs, str) else inputs:
        fs, path = fsspec.core.url_to_fs(spec, **storage_options)
        root, files, none = _matches(fs, path, suffix)
        if not files:
            raise FileNotFoundError(f"{spec} {none}")
        for name, info in sorted(files.items()):
            relative = name[len(root):].lstrip("/") if root else name.lstrip("/")
            if relative in seen:
                raise ValueError(f"two inputs would have the same output name {relative!r}")
            seen.add(relative)
            found.append(Input(fs, name, info["size"], relative))
    return found


def _matches(fs, path: str, suffix: str) -> tuple:
    """(root kept out of the output names, {file: info}, what to say when there is none)."""
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
    return root, {k: v for k, v in matches.items() if v["type"] == "file"}, none


def shipped(item: Input, ship: bool | None) -> tuple | None:
    """Where the client reads an input's blocks for the workers, if it does."""
    if ship is None:
        ship = bool(CLIENT_ONLY & set(protocols(item.fs)))
    return (item.fs, item.path) if ship else None


@dataclasses.dataclass
class Job:
    """One file: its blocks to submit, then its output written in block order."""

    report: FileReport
    target_fs: object
    target: str
    blocks: int  # tasks, one per block
    task: object  # block number -> (kind, args), args[1] being the block's Source
    size: object  # block number -> its original bytes (None: known once it is decoded)
    writer: "container.StreamWriter | None" = None  # compression: the stream's framing
    index: object = None  # decompression by blocks: the file's Index
    digests: list = dataclasses.field(default_factory=list)  # of each block decoded, in order
    ship: tuple | None = None  # (fs, path) the client reads blocks from, for the workers
    overwrite: bool = False
    next: int = 0
    ready: dict = dataclasses.field(default_factory=dict)  # block -> result not yet written
    out: Output | None = None

    def accept(self, i: int | None, data: bytes = b"") -> bool:
        """Block ``i``'s result (None: a file of no blocks); writes every block now in
        order, and publishes the output after the last one (True)."""
        if i is not None:
            self.ready[i] = data
        if self.out is None:
            self.out = Output(self.target, self.target_fs, overwrite=self.overwrite)
            if self.writer is not None:
                self.out.write(self.writer.head)
        while self.next in self.ready:
            data = self.ready.pop(self.next)
            if self.writer is not None:
                data = self.writer.block(data, self.size(self.next))
            elif self.index is not None:
                self.digests.append(container.digest(data))
            self.out.write(data)
            self.next += 1
        if self.next < self.blocks:
            return False
        self._finish()
        self.out.commit()
        self.report.bytes_out = self.out.size
        return True

    def _finish(self):
        """Compressing: the END record.  Decompressing: the file has its size and, for each
        stream, the content its END record covers."""
        if self.writer is not None:
            self.out.write(self.writer.end())
            return
        if self.report.bytes_out is not None and self.out.size != self.report.bytes_out:
            raise CorruptError(f"decoded {self.out.size} bytes where the stream holds "
                               f"{self.report.bytes_out}")
        if self.index is not None:
            for n, blocks in itertools.groupby(zip(self.index.stream, self.digests),
                                               lambda b: b[0]):
                self.index.check_content(n, [digest for _, digest in blocks])

    def fail(self, error: Exception):
        """The file failed: nothing of it is published."""
        self.report.fail(error)
        self.ready.clear()
        if self.out is not None:
            self.out.discard()


def plan_compress(item: Input, target_fs, root: str, settings: Settings, model_name: str,
                  storage_options: dict, ship: bool | None = None) -> Job:
    """The job of compressing ``item`` to ``root/NAME.nc``."""
    config = settings.config
    target = f"{root}/{container.compressed_name(item.relative)}"
    url, step = item.fs.unstrip_protocol(item.path), config.block_size
    report = FileReport(url, target_fs.unstrip_protocol(target), bytes_in=item.size)
    writer = container.StreamWriter(api.header_for(config, settings.sha256, model_name,
                                                   settings.env, item.size))

    def size(i):
        return min(step, item.size - i * step)

    def task(i):
        return "encode", (settings, Source(url, i * step, size(i), storage_options),
                          writer.head, i)

    report.blocks = -(-item.size // step)
    return Job(report, target_fs, target, report.blocks, task, size, writer=writer,
               ship=shipped(item, ship))


def plan_decompress(item: Input, target_fs, root: str, settings: Settings, model_name: str,
                    storage_options: dict, ship: bool | None = None) -> Job:
    """The job of decompressing ``item`` (``NAME.nc``) to ``root/NAME``: by blocks through
    its index, or as one task when it has none (concatenated streams)."""
    name = container.original_name(item.relative) or item.relative
    target = f"{root}/{name}"
    url = item.fs.unstrip_protocol(item.path)
    report = FileReport(url, target_fs.unstrip_protocol(target), compressing=False,
                        bytes_in=item.size)
    job = Job(report, target_fs, target, 0, None, None, ship=shipped(item, ship))
    try:
        if container.original_name(item.relative) is None:
            raise ValueError(f"unknown suffix (expected {container.SUFFIX})")
        _by_blocks(job, item, settings, url, storage_options)
    except (NacrithError, ValueError, OSError) as exc:
        report.fail(exc)
    report.blocks = job.blocks
    return job


def _by_blocks(job: Job, item: Input, settings: Settings, url: str, so: dict):
    from ..container.index import read_index
    with item.fs.open(item.path, "rb") as f:
        index = read_index(f)
    if index is None:  # decoded in one piece; its size is known at the end
        job.blocks, job.report.bytes_out, job.size = 1, None, lambda i: None
        job.task = lambda i: ("decode_stream", (settings, Source(url, 0, item.size, so)))
        return
    # the model is checked by each block's decoder, as on one machine
    job.index, job.blocks, job.report.bytes_out = index, index.blocks, index.size
    job.size = lambda i: index.raw[i + 1] - index.raw[i]
    job.task = lambda i: ("decode", (
        settings, Source(url, index.offsets[i], index.ends[i] - index.offsets[i], so),
        index.header(i), job.size(i), index.number(i)))
