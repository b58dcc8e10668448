"""The Python API, in the shape of the standard library's lzma and bz2 modules."""

from __future__ import annotations

import collections
import contextlib
import os

from . import container, presets
from .arguments import byte_view, content_size as checked_size, length_limit
from .config import CodecConfig
from .container.sequence import StreamSequence
from .engines import Engine, environment
from .engines.exact.selfcheck import select as select_device
from .engines.identity import Identity, differences
from .engines.llamacpp import chosen_threads
from .engines.model_file import (DEFAULT_FILE, DEFAULT_NAME, ENV_VAR, fingerprint,
                                 named_by_sha256, named_path, resolve_model_path)
from .errors import CorruptError, EnvironmentMismatchError
from .pipeline import memory
from .pipeline.batch import Threads
from .pipeline.workers import Pool, Serial
from .segments import classical
from .verify import StreamVerifier

#: The keyword options of NacrithCompressor beside CodecConfig's fields.
COMPRESSOR_OPTIONS = ("model", "preset", "config", "threads", "progress", "content_size",
                      "workers", "n_gpu_layers", "device", "verify", "format_version")
DECOMPRESSOR_OPTIONS = ("model", "threads", "progress", "workers", "n_gpu_layers", "device",
                        "memlimit")


def check_options(options: dict, names=COMPRESSOR_OPTIONS, config=True):
    """TypeError naming the valid options when ``options`` holds an unknown one."""
    fields = CodecConfig.field_names() if config else ()
    unknown = sorted(set(options) - set(names) - set(fields))
    if unknown:
        valid = ", ".join(names) + (f"; codec parameters: {', '.join(fields)}" if config else "")
        raise TypeError(f"unknown option{'s' * (len(unknown) > 1)} {', '.join(map(repr, unknown))}"
                        f" (valid: {valid})")


class _Coding:
    """What compressor and decompressor share: a model path resolved now, loaded later
    (by this process, or by each worker process with ``workers`` > 1)."""

    _memlimit = 0  # bytes a decoder of the stream may need (0: any); see pipeline/memory.py
    _encodes = False  # an encoder knows every token: the exact engine prefills its blocks

    def __init__(self, model, threads, progress, workers, n_gpu_layers, device):
        if workers < 1:
            raise ValueError("workers must be at least 1")
        threads = chosen_threads(threads)  # or $NACRITH_THREADS
        select_device(device)  # a bad name, or a missing CuPy or GPU, fails now
        self._model_path = resolve_model_path(model)
        self._model_chosen = model is not None or bool(os.environ.get(ENV_VAR))
        self._threads, self._progress, self._workers = threads, progress, workers
        self._gpu, self._device = n_gpu_layers, device
        self._runner = None

    @property
    def stats(self) -> dict:
        """Tokens, seconds, bits and bytes per coding method of the blocks coded so far."""
        if self._runner is None:
            return {}
        stats = self._runner.stats
        return {**stats, "segments": dict(stats["segments"])}

    def _engine(self, config) -> Engine:
        """The model loaded in this process for ``config``'s engine (workers load their own)."""
        return Engine.get(self._model_path, self._gpu, config.engine, self._device)

    @property
    def engine(self) -> Engine:
        """The engine this coder uses in this process: its configuration's (a decompressor's
        before its header is read: the default's)."""
        config = getattr(self, "config", None) or (self.header.config if getattr(
            self, "header", None) else CodecConfig())
        return self._engine(config)

    def _start_runner(self, config):
        if self._workers > 1 and config.engine == "exact" and not config.skips:
            # one model, one forward pass per step for every block (skip streams' rows
            # depend on slots after their own: they never share a step, context.py)
            self._runner = Threads(self._engine(config), config, self._workers, self._threads,
                                   self._progress, self._memlimit,
                                   share_passes=not self._encodes)
        elif self._workers > 1:
            self._runner = Pool(self._model_path, config, self._workers, self._threads,
                                self._progress, self._gpu, self._memlimit, self._device)
        else:
            self._runner = Serial(self._engine(config), config, self._threads, self._progress,
                                  self._memlimit)

    def close(self):
        """Stop the worker processes, if any (also done when the stream ends)."""
        if self._runner is not None:
            self._runner.close()


class NacrithCompressor(_Coding):
    """Incremental compressor: ``compress(chunk)`` then ``flush()``, as lzma's.

    >>> c = NacrithCompressor()  # the exact engine: a stream that decodes on any machine
    >>> packed = c.compress(b"Down the rabbit-hole. ") + c.compress(b"Alice!") + c.flush()
    >>> decompress(packed)
    b'Down the rabbit-hole. Alice!'

    Input is buffered up to one block (``block_size`` bytes) and each full
    block is coded as soon as it is complete, so memory stays bounded by one
    block whatever the input size (by ``2 * workers`` blocks with ``workers``
    processes coding blocks at once; the bytes written do not depend on it).
    ``preset`` (1..9, as lzma's; default 6) picks the model, window and streams together
    (presets.py); a model or option given beside it wins.
    Options that change the compressed bytes are those of ``CodecConfig``;
    ``threads``, ``workers`` and ``progress`` (a callable receiving the number
    of input bytes coded, many times per block) change only speed and
    reporting.  ``content_size``, when known, is recorded in the header.

    ``verify=True`` decodes the stream as it is written, with a decompressor
    of its own (about doubling the time; ``progress`` then counts every byte twice,
    and ``workers`` > 1 start as many decoding processes), and ``flush()`` raises
    VerifyError unless it reproduced every input byte.

    ``format_version`` (6, 7 or 8; default the newest, 8) writes a stream that readers of
    older releases read too, as xz's ``--format``: the same predictions in the older
    framing (version 6 has no neural cache: ``cache_size=0``).  Nothing is written before
    the first byte of input: an empty input makes version 8's empty stream (26 bytes,
    no model needed to read it).
    """

    _encodes = True

    def __init__(self, model=None, *, preset: int | None = None,
                 config: CodecConfig | None = None, threads=None, progress=None,
                 content_size: int | None = None, workers: int = 1, n_gpu_layers: int = 0,
                 device: str = "cpu", verify: bool = False,
                 format_version: int | None = None, **options):
        check_options(options)
        content_size = checked_size(content_size)
        if preset is not None:
            if config is not None:
                raise ValueError("give preset or config, not both (as lzma's preset and filters)")
            model, options = presets.apply(preset, model, options)
        base = config or CodecConfig()
        self.config = base.replace(**options) if options else base
        if str(device).startswith("cuda") and self.config.engine != "exact":
            raise ValueError(f"device={device!r} places the exact engine (engine='exact'); "
                             "llama.cpp offloads layers with n_gpu_layers instead")
        if not self.config.exact:
            raise ValueError("exact=0 is the arithmetic of format versions 1-5, which are "
                             "read but not written")
        super().__init__(model, threads, progress, workers, n_gpu_layers, device)
        self._verifier = (StreamVerifier(NacrithDecompressor(  # of our own stream: no memlimit
            self._model_path, threads=threads, progress=progress, workers=workers,
            n_gpu_layers=n_gpu_layers, device=device, memlimit=0)) if verify else None)
        self._content_size = content_size
        #: the format version this compressor writes (``format_version``, else the newest)
        self.format_version = container.header.version_for(self.config, format_version)
        self._buffer = bytearray()
        self._seen = 0  # input bytes taken
        self._lengths = collections.deque()  # raw length of each block in flight
        self._writer = None  # the stream's framing, once started
        self._total = 0
        self._flushed = False

    def _start(self) -> bytes:
        """The header, once: when the first byte of input comes, or at the end."""
        if self._writer is not None:
            return b""
        header = header_for(self.config, fingerprint(self._model_path),
                            os.path.basename(self._model_path),
                            environment(self._gpu), self._content_size, self.format_version)
        if header.model_sha256:  # an empty stream needs no model
            self._start_runner(self.config)
        self._writer = container.StreamWriter(header)
        return self._writer.head

    def _block(self, data: bytes):
        self._runner.submit("encode", data)
        self._lengths.append(len(data))
        self._total += len(data)

    def _records(self, wait=False) -> list[bytes]:
        return [self._writer.block(record, self._lengths.popleft())
                for record in self._runner.results(wait)]

    def compress(self, data) -> bytes:
        if self._flushed:
            raise ValueError("Compressor has been flushed")
        data = byte_view(data)
        if self._content_size is not None and self._seen + data.nbytes > self._content_size:
            raise ValueError(f"content_size was given as {self._content_size} but more bytes "
                             "came")  # before anything is written for them
        self._seen += data.nbytes
        self._buffer += data
        out = [self._start() if self._buffer else b""]
        size = self.config.block_size
        while len(self._buffer) >= size:
            self._block(bytes(self._buffer[:size]))
            del self._buffer[:size]
            out += self._records()
        return self._checked(data, b"".join(out))

    def _checked(self, data, out: bytes) -> bytes:
        if self._verifier is not None:
            self._verifier.check(data, out)
        return out

    def flush(self) -> bytes:
        if self._flushed:
            raise ValueError("Repeated call to flush()")
        self._flushed = True
        if self._writer is None and not self._buffer and self._content_size is None \
                and self.format_version >= container.header.LEAN:
            self._content_size = 0  # nothing came: the empty stream
        out = [self._start()]
        try:
            if self._buffer:
                self._block(bytes(self._buffer))
                self._buffer.clear()
            out += self._records(wait=True) if self._runner is not None else []
        finally:
            _Coding.close(self)  # the verifier's decoder, if any, ends with the stream
        if self._content_size is not None and self._content_size != self._total:
            raise ValueError(f"content_size was given as {self._content_size} but "
                             f"{self._total} bytes were compressed")
        out.append(self._writer.end())
        out = self._checked(b"", b"".join(out))
        if self._verifier is not None:
            self._verifier.finish()
        return out

    def close(self):
        super().close()
        if getattr(self, "_verifier", None) is not None:
            self._verifier.decoder.close()


def header_for(config, sha256: str, file_name: str, env: dict, content_size=None,
               version: int | None = None) -> container.Header:
    """The header of a stream written now with ``config`` by a model file (its SHA-256 in
    hex and its name) in environment ``env`` (engines.environment), in format ``version``
    (None: the newest): a named model needs no name (versions 6-7: the bundled one), only
    the llama.cpp engine's streams record the environment, and from version 8 a stream of
    no data records nothing else (``content_size=0``)."""
    version = container.header.version_for(config, version)
    lean = version >= container.header.LEAN
    if lean and content_size == 0:
        return container.header.empty_header(version)
    unnamed = named_by_sha256(sha256) is not None if lean else file_name == DEFAULT_FILE
    return container.Header(
        config, bytes.fromhex(sha256), "" if unnamed else file_name,
        env if config.engine == "llama.cpp" else {}, content_size, version)


class NacrithDecompressor(_Coding):
    """Incremental decompressor with lzma's interface.

    >>> d = NacrithDecompressor()
    >>> packed = compress(b"Curiouser and curiouser!")
    >>> d.decompress(packed[:20]) + d.decompress(packed[20:], max_length=9)
    b'Curiouser'
    >>> d.decompress(b""), d.eof
    (b' and curiouser!', True)

    ``decompress(data, max_length=-1)`` returns at most ``max_length`` bytes;
    ``eof`` is true after the end record, ``unused_data`` holds what followed
    it, and ``needs_input`` is false while decoded output is still waiting.
    At most one block of input and one block of output are held at a time
    (``2 * workers`` blocks with ``workers`` processes decoding at once).

    ``memlimit`` bounds what a stream's header can make it allocate, in bytes per
    decoding process (as lzma's): None takes ``NACRITH_MEMLIMIT`` from the environment,
    else 1 GiB (memory.DEFAULT_LIMIT); 0 is no limit; strings such as "4GiB" are read.
    A stream that needs more raises MemoryLimitError before anything is allocated.
    """

    def __init__(self, model=None, *, threads=None, progress=None, workers: int = 1,
                 n_gpu_layers: int = 0, device: str = "cpu", memlimit=None):
        super().__init__(model, threads, progress, workers, n_gpu_layers, device)
        self._memlimit = memory.resolve(memlimit)
        self.header: container.Header | None = None
        self._input = bytearray()
        self._pending = b""
        self._blocks = collections.deque()  # records being decoded, in order
        self._end = None  # the end record, once read
        self._tally = container.Tally()  # the blocks read, for the END record's check
        self._first = 0  # the number of the first block read (random access: one block alone)
        self._offset = 0  # the stream offset of _input[0], for messages
        self.eof = False
        self.needs_input = True
        self.unused_data = b""

    def _check_model(self, header):
        if not header.model_sha256:  # an empty stream: no model predicts anything
            return
        needed = Identity(header.model_sha256.hex(), header.model_name, {})
        named = named_by_sha256(needed.sha256)
        if not self._model_chosen and named is not None and named.name != DEFAULT_NAME:
            self._model_path = named_path(named.name)  # the named model the stream names
        ours = Identity(fingerprint(self._model_path), str(self._model_path), {})
        ours.require(needed, "this stream")

    def _verified(self, block: container.Block, data: bytes) -> bytes:
        if block.digest and container.digest(data) != block.digest:
            raise self._explained(block, CorruptError(
                "corrupt stream: a decoded block failed its checksum"))
        return data

    @contextlib.contextmanager
    def _explaining(self, block):
        """Decoding ``block``: its CorruptErrors become EnvironmentMismatchErrors when the
        environment differs."""
        try:
            yield
        except EnvironmentMismatchError:
            raise
        except CorruptError as exc:
            if block is None:
                raise
            raise self._explained(block, exc) from exc

    def _explained(self, block: container.Block, error: CorruptError) -> CorruptError:
        """``error`` (a model-coded block failed to decode), or an EnvironmentMismatchError
        naming what differs when the stream was written in another environment: other
        predictions make the range decoder go astray in any of several ways."""
        if classical.MODEL not in block.methods() or self.header.config.engine == "exact":
            return error  # the model played no part, or its logits depend on no environment
        differ = differences(self.header.env,
                             environment(self._gpu, numpy=not self.header.config.exact))
        if not differ:
            return error
        return EnvironmentMismatchError(f"decoding failed ({error}), and the stream was "
                                        f"written in a different environment: {differ}")

    def _read_records(self):
        """Parse the complete records in the input, handing blocks to the runner while it
        has room."""
        while self._end is None and (self._runner is None
                                     or len(self._runner) < self._runner.limit):
            read = len(self._tally.index)
            parsed = container.parse_record(self._input, 0, self.header, read,
                                            self._first + read, origin=self._offset)
            if parsed is None:
                return
            record, end = parsed
            del self._input[:end]
            self._offset += end
            if isinstance(record, container.End):
                self._tally.check_end(record, self.header)
                self._end = record
                self.unused_data = bytes(self._input)
                self._input.clear()
                return
            self._tally.add(record.raw_len, end, record.digest)
            self._blocks.append(record)
            if self._runner is None:  # the first block: only now is anything allocated
                self._start_runner(self.header.config)
            with self._explaining(record):  # a serial runner decodes it now
                self._runner.submit("decode", record)

    def _advance(self) -> bool:
        """Decode the next block into ``_pending``; False when more input is needed."""
        if self.header is None:
            parsed = container.parse_header(self._input)
            if parsed is None:
                return False
            self.header, end = parsed
            del self._input[:end]
            self._offset += end
            self._check_model(self.header)
            return True
        self._read_records()
        runner = self._runner
        # Wait for a block only when no more input could start another one.
        wait = self._end is not None or (runner is not None and len(runner) >= runner.limit)
        with self._explaining(self._blocks[0] if self._blocks else None):
            for data in runner.results(wait=wait) if runner is not None else ():
                self._pending = self._verified(self._blocks.popleft(), data)
                return True
        if self._end is not None and not self._blocks:
            self.eof = True
            self.close()
            return True
        return False

    def decompress(self, data, max_length: int = -1) -> bytes:
        if self.eof:
            raise EOFError("End of stream already reached")
        data = byte_view(data)
        max_length = length_limit(max_length)
        self._input += data
        out = []
        want = max_length if max_length >= 0 else float("inf")
        got = 0
        while got < want:
            if self._pending:
                piece = self._pending[:int(min(want - got, len(self._pending)))]
                self._pending = self._pending[len(piece):]
                out.append(piece)
                got += len(piece)
            elif self.eof or not self._advance():
                break
        self.needs_input = not self.eof and not self._pending and got < want
        return b"".join(out)


def compress(data, model=None, **options) -> bytes:
    """Compress ``data`` in one call; options as for ``NacrithCompressor``.

    >>> packed = compress(b"We're all mad here.", window=64, slide=16)
    >>> packed[:4], decompress(packed)
    (b'NACR', b"We're all mad here.")
    """
    data = byte_view(data)
    options.setdefault("content_size", data.nbytes)
    c = NacrithCompressor(model, **options)
    return c.compress(data) + c.flush()


def decompress(data, model=None, **options) -> bytes:
    """Decompress one or more concatenated streams (``container.sequence``: anything else
    after a stream is an error); options as for ``NacrithDecompressor``.

    >>> decompress(compress(b"one ") + compress(b"two"))
    b'one two'
    >>> decompress(compress(b"one") + b"junk")
    Traceback (most recent call last):
        ...
    nacrith_codec.errors.FormatError: trailing data after the end of stream 1, ...
    """
    data = byte_view(data)
    check_options(options, DECOMPRESSOR_OPTIONS, config=False)
    streams = decoder_of_streams(model, **options)
    try:
        out = streams.decompress(data)
        streams.finish()
    finally:
        streams.close()
    return out


def decoder_of_streams(model=None, **options) -> StreamSequence:
    """An incremental decoder of one or more concatenated streams, by the one rule for
    where input ends (container/sequence.py); call ``finish()`` when the input is
    exhausted.  Every reader uses it: ``decompress``, file objects, the command line,
    ``nacrith bench``.  Options as for ``NacrithDecompressor``."""
    return StreamSequence(lambda: NacrithDecompressor(model, **options))
