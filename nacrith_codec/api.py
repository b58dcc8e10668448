"""The Python API, in the shape of the standard library's lzma and bz2 modules."""

from __future__ import annotations

import json

from . import classical, container
from .block import BlockCoder
from .config import CodecConfig
from .engine import Engine
from .errors import (CorruptError, EnvironmentMismatchError, FormatError, ModelMismatchError,
                     TruncatedError)
from .model_file import resolve_model_path


class _Coding:
    """What compressor and decompressor share: a model path resolved now, loaded later."""

    def __init__(self, model, threads, progress):
        self._model_path = resolve_model_path(model)
        self._threads, self._progress = threads, progress
        self._engine = None
        self._coder = None

    @property
    def stats(self) -> dict:
        """Tokens, seconds, bits and bytes per coding method of the blocks coded so far."""
        if not self._coder:
            return {}
        return {**self._coder.stats, "segments": dict(self._coder.stats["segments"])}

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = Engine.get(self._model_path)
        return self._engine


class NacrithCompressor(_Coding):
    """Incremental compressor: ``compress(chunk)`` then ``flush()``, as lzma's.

    Input is buffered up to one block (``block_size`` bytes) and each full
    block is coded as soon as it is complete, so memory stays bounded by one
    block whatever the input size.  Options that change the compressed bytes
    are those of ``CodecConfig``; ``threads`` and ``progress`` (a callable
    receiving the number of input bytes coded at each step) change only speed
    and reporting.  ``content_size``, when known, is recorded in the header.
    """

    def __init__(self, model=None, *, config: CodecConfig | None = None, threads=None,
                 progress=None, content_size: int | None = None, **options):
        super().__init__(model, threads, progress)
        base = config or CodecConfig()
        self.config = base.replace(**options) if options else base
        self._content_size = content_size
        self._buffer = bytearray()
        self._index = []  # (raw_len, record_len) of each block written
        self._total = 0
        self._flushed = False

    def _start(self) -> bytes:
        if self._coder is not None:
            return b""
        e = self.engine
        self._coder = BlockCoder(e, self.config, self._threads, self._progress)
        return container.pack_header(container.Header(
            self.config, bytes.fromhex(e.sha256), e.name, e.env, self._content_size))

    def _block(self, data: bytes) -> bytes:
        record = self._coder.encode(data)
        self._index.append((len(data), len(record)))
        self._total += len(data)
        return record

    def compress(self, data) -> bytes:
        if self._flushed:
            raise ValueError("Compressor has been flushed")
        self._buffer += data
        out = [self._start()]
        size = self.config.block_size
        while len(self._buffer) >= size:
            out.append(self._block(bytes(self._buffer[:size])))
            del self._buffer[:size]
        return b"".join(out)

    def flush(self) -> bytes:
        if self._flushed:
            raise ValueError("Repeated call to flush()")
        self._flushed = True
        out = [self._start()]
        if self._buffer:
            out.append(self._block(bytes(self._buffer)))
            self._buffer.clear()
        if self._content_size is not None and self._content_size != self._total:
            raise ValueError(f"content_size was given as {self._content_size} but "
                             f"{self._total} bytes were compressed")
        out.append(container.pack_end(self._total, self._index))
        return b"".join(out)


class NacrithDecompressor(_Coding):
    """Incremental decompressor with lzma's interface.

    ``decompress(data, max_length=-1)`` returns at most ``max_length`` bytes;
    ``eof`` is true after the end record, ``unused_data`` holds what followed
    it, and ``needs_input`` is false while decoded output is still waiting.
    At most one block of input and one block of output are held at a time.
    """

    def __init__(self, model=None, *, threads=None, progress=None):
        super().__init__(model, threads, progress)
        self.header: container.Header | None = None
        self._input = bytearray()
        self._pending = b""
        self._index = []  # (raw_len, record_len) of each block read
        self._total = 0
        self.eof = False
        self.needs_input = True
        self.unused_data = b""

    def _check_model(self, header):
        needed = header.model_sha256.hex()
        if self.engine.sha256 != needed:
            raise ModelMismatchError(
                f"this stream needs the model {header.model_name!r} (sha256 {needed}), but the "
                f"model given is {self._model_path} (sha256 {self.engine.sha256}); pass that file "
                "as model=..., --model or NACRITH_MODEL")

    def _decode_block(self, block: container.Block) -> bytes:
        data = self._coder.decode(block)
        if block.digest and container.digest(data) != block.digest:
            if classical.TEXT not in block.methods():  # the model played no part
                raise CorruptError("corrupt stream: a decoded block failed its checksum")
            ours = json.loads(self.engine.env)
            try:
                theirs = dict(json.loads(self.header.env))
            except (ValueError, TypeError):
                theirs = {"environment": self.header.env}
            differ = sorted(k for k in set(ours) | set(theirs) if ours.get(k) != theirs.get(k))
            if differ:
                raise EnvironmentMismatchError(
                    "decoding failed its checksum, and the stream was written by a different "
                    "llama.cpp environment: " + "; ".join(
                        f"{k}: writer {theirs.get(k)!r}, here {ours.get(k)!r}" for k in differ))
            raise CorruptError("corrupt stream: a decoded block failed its checksum")
        return data

    def _advance(self) -> bool:
        """Parse and decode the next record; False when more input is needed."""
        if self.header is None:
            parsed = container.parse_header(self._input)
            if parsed is None:
                return False
            self.header, end = parsed
            del self._input[:end]
            self._check_model(self.header)
            self._coder = BlockCoder(self.engine, self.header.config, self._threads, self._progress)
            return True
        parsed = container.parse_record(self._input, 0, self.header, len(self._index))
        if parsed is None:
            return False
        record, end = parsed
        del self._input[:end]
        if isinstance(record, container.End):
            if (record.index, record.total_len) != (tuple(self._index), self._total):
                raise CorruptError("corrupt stream: blocks are missing, repeated or misindexed")
            size = self.header.content_size
            if size is not None and size != self._total:
                raise CorruptError("corrupt stream: content size does not match the data")
            self.eof = True
            self.unused_data = bytes(self._input)
            self._input.clear()
            return True
        self._index.append((record.raw_len, end))
        self._total += record.raw_len
        self._pending = self._decode_block(record)
        return True

    def decompress(self, data, max_length: int = -1) -> bytes:
        if self.eof:
            raise EOFError("End of stream already reached")
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
    """Compress ``data`` in one call; options as for ``NacrithCompressor``."""
    options.setdefault("content_size", len(data))
    c = NacrithCompressor(model, **options)
    return c.compress(data) + c.flush()


def decompress(data, model=None, **options) -> bytes:
    """Decompress one or more concatenated streams; any other trailing data is an error."""
    results = []
    while True:
        d = NacrithDecompressor(model, **options)
        results.append(d.decompress(data))
        if not d.eof:
            raise TruncatedError("compressed data ended before the end-of-stream marker was reached")
        data = d.unused_data
        if not data:
            return b"".join(results)
        if not data.startswith(container.MAGIC):
            raise FormatError(f"{len(data)} bytes of trailing data after the end of the stream")
