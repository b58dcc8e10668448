"""fsspec compression "nacrith": ``fsspec.open(path, mode, compression="nacrith")``.

>>> import fsspec, nacrith_codec
>>> with fsspec.open("memory://docs/note.txt.nc", "wt", compression="infer") as f:
...     _ = f.write("Who are you?")
>>> with fsspec.open("memory://docs/note.txt.nc", "rt", compression="infer") as f:
...     f.read()
'Who are you?'

Registered by ``import nacrith_codec`` (fsspec discovers filesystems through
entry points, but has none for compressions, so in a process that has not
imported nacrith_codec fsspec answers "Compression type nacrith not supported"
and ``compression="infer"`` reads ``.nc`` files as they are stored).

One entry, ``nacrith``, also inferred from the ``.nc`` suffix.  ``.nc`` is
NetCDF's suffix too, so NetCDF files are read unchanged: a file that starts
with a NetCDF signature (classic "CDF\\x01/\\x02/\\x05" or NetCDF-4's HDF5
signature) is read as it is.  Anything else read must be a nacrith stream
(FormatError otherwise, saying what it looks like).  What is written is always
a nacrith stream, whatever its first bytes (so it reads back as written), and
appending a stream to a NetCDF file is refused (it would read back as NetCDF).

fsspec passes a compression no options, so they come from the environment:
``NACRITH_MODEL`` (a GGUF path) and ``NACRITH_OPTIONS``, comma-separated
``name=value`` pairs of ``CodecConfig`` fields and ``threads`` (for example
``NACRITH_OPTIONS="streams=4,window=2048,slide=512,threads=1"``).  Reading applies
only ``threads``: a stream records the rest.  ``NACRITH_THREADS`` sets the threads
of every reader and writer that is given none.  The ``nacrith::`` filesystem also
takes them as storage options.
"""

from __future__ import annotations

import dataclasses
import io
import os

import fsspec.compression

from nacrith_codec import key_values
from nacrith_codec.config import ENGINES, CodecConfig
from nacrith_codec.container import SUFFIX
from nacrith_codec.file import NacrithFile
from nacrith_codec.container.sniff import NETCDF_SIGNATURES

_SNIFF = max(len(s) for s in NETCDF_SIGNATURES)


_OPTION_NAMES = {f.name for f in dataclasses.fields(CodecConfig)} | {"threads", "preset"}


def env_options() -> dict:
    """Codec options from ``NACRITH_OPTIONS`` ("name=value,..."), checked by name: integers,
    and ``engine=exact`` or ``engine=llama.cpp``."""
    options = {}
    items = filter(None, os.environ.get("NACRITH_OPTIONS", "").split(","))
    for name, value in key_values.parse(items, "NACRITH_OPTIONS").items():
        if name == "engine" and value in ENGINES:
            options[name] = value
            continue
        if name not in _OPTION_NAMES or name == "engine" or not key_values.is_integer(value):
            raise ValueError(f"NACRITH_OPTIONS: {name}={value!r} is not name=integer with a "
                             f"name among {sorted(_OPTION_NAMES - {'engine'})}, or engine=NAME "
                             f"with a name among {list(ENGINES)}")
        options[name] = int(value)
    return options


class _Prefixed(io.RawIOBase):
    """A non-seekable reader that returns ``head`` and then the rest of ``raw``."""

    def __init__(self, head: bytes, raw):
        self._head, self._raw = head, raw

    def readable(self):
        return True

    def readinto(self, b):
        if self._head:
            n = min(len(b), len(self._head))
            b[:n], self._head = self._head[:n], self._head[n:]
            return n
        data = self._raw.read(len(b))
        b[:len(data)] = data
        return len(data)


def _peek(raw, n: int):
    """The first n bytes of ``raw`` and a reader positioned before them."""
    if raw.seekable():
        start = raw.tell()
        head = raw.read(n)
        raw.seek(start)
        return head, raw
    head = raw.read(n)
    return head, io.BufferedReader(_Prefixed(head, raw))


def _refuse_appending_to_netcdf(infile):
    """ValueError when the file ``infile`` appends to starts with a NetCDF signature: it is
    read as it is, so a stream appended to it would read back as its compressed bytes."""
    fs, path = getattr(infile, "fs", None), getattr(infile, "path", None)
    if fs is None or path is None or not fs.exists(path):  # fsspec's files name both
        return
    head = fs.cat_file(path, 0, _SNIFF)  # not fs.open: memory:// would share the position
    if head.startswith(NETCDF_SIGNATURES):
        raise ValueError(f"{path} is a NetCDF file (it starts with a NetCDF signature), which "
                         "compression='nacrith' reads as it is: a nacrith stream appended to "
                         "it would read back as compressed bytes; write to another file")


def open_nacrith(infile, mode="rb", **options):
    """fsspec's compression callback: a NacrithFile over ``infile`` (a NetCDF file is read
    as it is)."""
    env = env_options()  # checked before anything is read or written
    if mode[0] == "r":
        head, reader = _peek(infile, _SNIFF)
        if head.startswith(NETCDF_SIGNATURES):
            return reader
        speed = {k: v for k, v in env.items() if k == "threads"}  # the rest is in the stream
        return NacrithFile(reader, "r", **{**speed, **options})
    options = {**env, **options}
    if mode[0] == "a":
        _refuse_appending_to_netcdf(infile)
    return NacrithFile(infile, mode[0], **options)


def register():
    fsspec.compression.register_compression("nacrith", open_nacrith, [SUFFIX.lstrip(".")],
                                            force=True)


register()
