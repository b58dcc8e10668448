"""Decoding what was just written, and the one rule for what a failed check says.

``verify=True`` (the API, the command line's ``--verify``) decodes a stream as it is
written (``StreamVerifier``); the Dask runner's ``verify`` decodes each block on its
worker after coding it (random_access.verify_block).  Either way a mismatch is a VerifyError:
the input is intact, and the output must not be kept.
"""

from __future__ import annotations

import hashlib

from .errors import NacrithError, VerifyError


def does_not_decode(what: str, exc: Exception) -> VerifyError:
    return VerifyError(f"verification failed: {what} does not decode "
                       f"({type(exc).__name__}: {exc}); the input is intact, do not keep the "
                       "output")


def decodes_otherwise(what: str, detail: str = "") -> VerifyError:
    return VerifyError(f"verification failed: {what} decodes to other bytes{detail}; the "
                       "input is intact, do not keep the output")


class StreamVerifier:
    """Decodes a compressor's output as it is produced and compares it with the input."""

    def __init__(self, decoder):
        self.decoder = decoder
        self._read, self._decoded = hashlib.blake2b(), hashlib.blake2b()
        self._sizes = [0, 0]

    def check(self, data, out: bytes):
        self._read.update(data)
        self._sizes[0] += len(memoryview(data).cast("B"))
        if not out:
            return
        try:
            decoded = self.decoder.decompress(out)
        except NacrithError as exc:
            raise does_not_decode("the stream written", exc) from exc
        self._decoded.update(decoded)
        self._sizes[1] += len(decoded)

    def finish(self):
        if not self.decoder.eof or self.decoder.unused_data:
            raise VerifyError("verification failed: the stream written does not end where "
                              "its end record says; do not keep the output")
        if self._sizes[0] != self._sizes[1] or self._read.digest() != self._decoded.digest():
            raise decodes_otherwise("the stream written",
                                     f" ({self._sizes[1]} bytes for {self._sizes[0]} read)")
