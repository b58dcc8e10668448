"""A 7z filter for py7zr: ``filters=[{"id": FILTER_NACRITH}]``.

>>> import io, pathlib, tempfile, py7zr
>>> from nacrith_codec.plugins.sevenzip import FILTER_NACRITH
>>> archive = io.BytesIO()
>>> with py7zr.SevenZipFile(archive, "w", filters=[{"id": FILTER_NACRITH}]) as z:
...     z.writestr(b"Twinkle, twinkle, little bat!", "song.txt")
>>> _ = archive.seek(0)
>>> with py7zr.SevenZipFile(archive, "r") as z, tempfile.TemporaryDirectory() as out:
...     z.extractall(out)
...     (pathlib.Path(out) / "song.txt").read_bytes()
b'Twinkle, twinkle, little bat!'

py7zr has no codec registry; two tables decide what it can write and read:
``SupportedMethods.methods`` (method id bytes, name, filter id) and
``algorithm_class_map`` (filter id -> compressor and decompressor classes).
``register()`` adds nacrith to both and teaches the writer to build a coder
entry with properties, without editing py7zr.  It is idempotent and runs on
``import nacrith_codec.plugins.sevenzip``.

The 7z coder properties hold one byte, the stream's format version (the filter's
``format_version``, else the newest, so a release that reads it opens the archive); everything
else the decoder needs (model fingerprint, parameters, checksums) is in the
stream itself.  Options in the filter dict reach the compressor: ``model``,
``threads`` and any ``CodecConfig`` field (``streams``, ``window``, ...).
"""

from __future__ import annotations

from nacrith_codec import container
from nacrith_codec.api import NacrithCompressor, NacrithDecompressor
from nacrith_codec.errors import CorruptError, FormatError, NacrithError

#: 7-Zip's rule for private method ids: 3F, five random bytes (ours), a method number.
METHOD_ID = bytes.fromhex("3F35984265BC0001")
#: py7zr's filter id for nacrith (the method id read as an integer).
FILTER_NACRITH = int.from_bytes(METHOD_ID, "big")
PROPERTIES = bytes([container.VERSION])


class SevenZipCompressor:
    """py7zr's compressor interface: ``compress(data)``, ``flush()``."""

    def __init__(self, filter_spec: dict | None = None):
        options = {k: v for k, v in (filter_spec or {}).items() if k != "id"}
        self._compressor = NacrithCompressor(**options)
        #: the 7z coder properties: the format version of the stream written
        self.properties = bytes([self._compressor.format_version])

    def compress(self, data) -> bytes:
        return self._compressor.compress(data)

    def flush(self) -> bytes:
        return self._compressor.flush()


class SevenZipDecompressor:
    """py7zr's decompressor interface: ``decompress(data, max_length=-1)``.

    Bytes after the end of the stream (7zAES pads to 16 bytes) are ignored.  ``size`` is
    the size the archive declares for the folder's output (py7zr's unpack size, passed
    by ``register()``): the stream must end exactly there.  A stream that holds more
    is a CorruptError when the size is reached, one that ends sooner when more is asked
    of it, and the last byte is held back until the stream's end record has been read
    and checked, so the member that ends the folder is never complete before its stream.
    """

    def __init__(self, properties: bytes = PROPERTIES, block_size: int | None = None,
                 size: int | None = None):
        if len(properties) < 1 or properties[0] not in container.READABLE:
            raise FormatError(f"7z coder properties {bytes(properties).hex()} name a nacrith "
                              "format this build cannot read (it reads versions "
                              f"{', '.join(map(str, container.READABLE))})")
        self._decompressor = NacrithDecompressor()
        self._size, self._given, self._held = size, 0, b""

    def decompress(self, data, max_length: int = -1) -> bytes:
        d = self._decompressor
        try:
            if self._size is None:
                return b"" if d.eof else d.decompress(data, max_length)
            return self._to_declared_size(data, max_length)
        except FormatError as exc:
            if d.header is not None:
                raise
            raise FormatError(
                "this 7z member's nacrith data is not a nacrith stream: if the archive is "
                "encrypted, the password is probably wrong; otherwise the archive is damaged "
                f"({exc})") from None

    def _to_declared_size(self, data, max_length: int) -> bytes:
        d, size = self._decompressor, self._size
        if d.eof:  # asked for more after the stream's end
            raise CorruptError(f"the archive is damaged: its nacrith stream ends after "
                               f"{self._given:,} bytes, but the 7z folder declares {size:,}")
        out = self._held + d.decompress(data, 1 if self._held else max_length)
        self._held = b""
        end = self._given + len(out)
        if end > size or (end == size and not d.eof and d.decompress(b"", 1)):
            raise CorruptError(f"the archive is damaged: its nacrith stream holds more than "
                               f"the {size:,} bytes the 7z folder declares")
        if end == size and not d.eof:  # the end record is still to come: hold the last byte
            out, self._held = out[:-1], out[-1:]
        self._given += len(out)
        return out


def register():
    """Add nacrith to py7zr's method tables (idempotent)."""
    from py7zr import compressor as c

    if FILTER_NACRITH in c.algorithm_class_map:
        return
    c.SupportedMethods.methods.append({
        "id": METHOD_ID, "name": "NACRITH", "native": False, "need_prop": True,
        "filter_id": FILTER_NACRITH, "type": c.MethodsType.compressor})
    c.algorithm_class_map[FILTER_NACRITH] = (SevenZipCompressor, SevenZipDecompressor)
    original = c.SevenZipCompressor._set_alternate_compressors_coders

    def set_alternate_compressors_coders(self, alt_filter, password=None):
        if alt_filter["id"] != FILTER_NACRITH:
            return original(self, alt_filter, password)
        compressor = SevenZipCompressor(alt_filter)
        self.chain.append(compressor)
        self._unpacksizes.append(0)
        self.coders.insert(0, {"method": METHOD_ID, "properties": compressor.properties,
                               "numinstreams": 1, "numoutstreams": 1})

    c.SevenZipCompressor._set_alternate_compressors_coders = set_alternate_compressors_coders
    make_decompressor = c.SevenZipDecompressor._get_alternative_decompressor

    def get_alternative_decompressor(self, coder, unpacksize=None, password=None):
        if c.SupportedMethods.get_filter_id(coder) != FILTER_NACRITH:
            return make_decompressor(self, coder, unpacksize, password)
        return SevenZipDecompressor(coder["properties"], self.block_size, unpacksize)

    c.SevenZipDecompressor._get_alternative_decompressor = get_alternative_decompressor
    _check_filters_on_open()


def check_filter(spec: dict):
    """ValueError naming the valid options when a nacrith filter dict has an unknown one
    (py7zr would meet it only at the first write, with the archive half made)."""
    try:
        SevenZipCompressor(spec)  # the compressor's own checks; nothing is coded yet
    except (TypeError, ValueError) as exc:
        raise ValueError(f"nacrith 7z filter: {exc}") from None


def _check_filters_on_open():
    """Check nacrith filters when an archive is opened for writing; a new archive whose
    filters are refused is removed (py7zr has created it empty), so no broken .7z stays."""
    import os

    import py7zr

    for name in ("_prepare_write", "_prepare_append"):
        original = getattr(py7zr.SevenZipFile, name)

        def checked(self, filters, password, _original=original, _name=name):
            try:
                for spec in filters or ():
                    if spec.get("id") == FILTER_NACRITH:
                        check_filter(spec)
            except (ValueError, NacrithError):  # NacrithError: its model is not found
                if _name == "_prepare_write" and not self._filePassed and self.filename:
                    self.fp.close()
                    os.unlink(self.filename)
                raise
            return _original(self, filters, password)

        setattr(py7zr.SevenZipFile, name, checked)


register()
