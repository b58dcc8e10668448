"""Writes that are complete or raise, whatever the file object.

A raw file (``open(path, "wb", buffering=0)``, an unbuffered standard output,
a pipe) may take fewer bytes than it was given and say so only in its return
value; a full disk shows first as such a short write.  Every writer of
compressed bytes (the command line, file objects) goes through ``write_all``,
so that a partial output is never reported as a success.
"""

from __future__ import annotations

import io

def write_all(out, data) -> None:
    """Write every byte of ``data`` to ``out``, or raise: a raw file's short write (an
    unbuffered standard output, a full disk) is retried, and one that writes nothing
    is an error, so a partial output is never reported as a success."""
    view = memoryview(data).cast("B")
    while view:
        n = out.write(view)
        if n is None:
            if isinstance(out, io.RawIOBase):  # non-blocking, and could take nothing now
                raise OSError("the output would block; nothing was written")
            return  # a file-like object that does not count (many outside io): it took all
        if n <= 0:
            raise OSError(f"the output took none of {len(view)} bytes (is the disk full?)")
        view = view[n:]
