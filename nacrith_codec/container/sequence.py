"""Concatenated streams: the one rule for where input ends.

A nacrith file is one or more streams back to back, as gzip, xz and zstd
files are: ``nacrith -c a b > ab.nc``, ``cat x.nc y.nc``, a file opened for
appending.  Decoding them gives the concatenation of their contents.  After a
stream's end record the input must end, or another stream must start (its
magic bytes); anything else is trailing data, a FormatError.  Input that ends
inside a stream is a TruncatedError, and so is input with no stream at all.

Every reader uses this rule: ``decompress``, file objects, the command line and
``nacrith bench`` through ``api.decoder_of_streams``, and ``nacrith info``
(``container.inspect.streams_info``).
"""

from __future__ import annotations

from ..arguments import byte_view, length_limit
from ..errors import FormatError, TruncatedError
from ..pipeline.stats import add_stats, new_stats
from .header import not_a_stream, starts_stream
from .sniff import what_it_looks_like

#: What ``finish`` says of input that ends inside a stream.
INCOMPLETE = ("the compressed data ends before the end of its stream: the file is incomplete "
              "(cut short while it was written, downloaded or copied?); get a complete copy")


def check_next(rest: bytes, streams: int) -> bool:
    """Whether the bytes after stream number ``streams`` start another stream (True),
    may still (False: too few bytes to tell); raises FormatError for trailing data."""
    starts = starts_stream(rest)
    if starts is False:
        if not streams:
            raise not_a_stream(rest)
        raise FormatError(f"trailing data after the end of stream {streams}, which is not "
                          f"another nacrith stream: {what_it_looks_like(rest)}")
    return bool(starts)


class StreamSequence:
    """Decodes one or more concatenated streams incrementally, as NacrithDecompressor
    decodes one: ``decompress(data, max_length=-1)``, ``needs_input``, ``eof`` after
    ``finish()`` (call it when the input is exhausted: it raises unless the input
    ended cleanly after a stream).  ``new_decoder()`` makes each stream's decoder."""

    def __init__(self, new_decoder):
        self._new = new_decoder
        self._decoder = None  # of the stream being decoded
        self._rest = b""  # input after the last stream's end, not yet given to a decoder
        self.streams = 0  # streams decoded to their end
        self._stats = new_stats()  # of the streams decoded to their end
        self.needs_input = True
        self.eof = False

    @property
    def header(self):
        """The header of the stream being decoded (None between streams)."""
        return self._decoder.header if self._decoder is not None else None

    @property
    def stats(self) -> dict:
        """The decoders' statistics (NacrithDecompressor.stats), summed over the streams."""
        total = new_stats()
        add_stats(total, self._stats)
        if self._decoder is not None:
            add_stats(total, self._decoder.stats)
        return total

    def decompress(self, data, max_length: int = -1) -> bytes:
        if self.eof:
            raise EOFError("End of stream already reached")
        max_length = length_limit(max_length)
        out, want = [], max_length if max_length >= 0 else float("inf")
        got = 0
        feed = bytes(byte_view(data))
        while got < want:
            if self._decoder is None:
                self._rest += feed
                feed = b""
                if not self._rest or not check_next(self._rest, self.streams):
                    break
                self._decoder, feed, self._rest = self._new(), self._rest, b""
            limit = -1 if want == float("inf") else int(want - got)
            piece = self._decoder.decompress(feed, limit)
            feed = b""
            out.append(piece)
            got += len(piece)
            if self._decoder.eof:
                self.streams += 1
                add_stats(self._stats, self._decoder.stats)
                feed, self._decoder = self._decoder.unused_data, None
                continue
            if self._decoder.needs_input:
                break
        self.needs_input = got < want
        return b"".join(out)

    def finish(self):
        """The input is exhausted: raise unless it ended just after a stream."""
        if self._decoder is not None or self._rest:
            where = "its first stream" if not self.streams else f"stream {self.streams + 1}"
            raise TruncatedError(INCOMPLETE.replace("its stream", where))
        if not self.streams:
            raise TruncatedError("no nacrith stream: the input is empty")
        self.eof = True

    def close(self):
        if self._decoder is not None:
            self._decoder.close()
