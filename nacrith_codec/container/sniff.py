"""What a byte string that is not a nacrith stream looks like, for error messages.

A user who runs ``nacrith -d`` on a gzip file, a 7z archive or plain text is
told what it is and which tool reads it, as ``file(1)`` would, instead of
"bad magic bytes".
"""

from __future__ import annotations

#: NetCDF's signatures: classic (versions 1, 2, 5) and NetCDF-4's HDF5 one.
NETCDF_SIGNATURES = (b"CDF\x01", b"CDF\x02", b"CDF\x05", b"\x89HDF\r\n\x1a\n")

#: (signature, what it is, what reads it), most specific first.
_SIGNATURES = (
    (b"\x1f\x8b", "gzip data", "gzip -d"),
    (b"\xfd7zXZ\x00", "xz data", "xz -d"),
    (b"\x28\xb5\x2f\xfd", "Zstandard data", "zstd -d"),
    (b"BZh", "bzip2 data", "bzip2 -d"),
    (b"\x5d\x00\x00", "LZMA (.lzma) data", "xz -d --format=lzma"),
    (b"7z\xbc\xaf\x27\x1c", "a 7z archive", "`nacrith 7z x` for nacrith archives, else 7z x"),
    (b"PK\x03\x04", "a zip archive", "unzip"),
    (b"%PDF", "a PDF document", None),
    (b"\x89PNG\r\n\x1a\n", "a PNG image", None),
    (b"\xff\xd8\xff", "a JPEG image", None),
    *((s, "a NetCDF file", None) for s in NETCDF_SIGNATURES[:3]),
    (NETCDF_SIGNATURES[3], "an HDF5 (NetCDF-4) file", None),
    (b"GGUF", "a GGUF model file", None),
)


def what_it_looks_like(data: bytes) -> str:
    """A phrase naming what ``data`` (the first bytes of an input) looks like."""
    data = bytes(data[:512])
    if not data:
        return "it is empty"
    for signature, what, tool in _SIGNATURES:
        if data.startswith(signature):
            return f"it looks like {what}" + (f" (read it with {tool})" if tool else "")
    if len(data) >= 262 and data[257:262] == b"ustar":
        return "it looks like a tar archive"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        text = data[:exc.start].decode("utf-8") if exc.start >= len(data) - 4 else None
    if text is not None and all(c.isprintable() or c in "\t\r\n\f" for c in text):
        return "it looks like uncompressed text (compress it with `nacrith FILE`)"
    return "it is not in any format nacrith recognizes"
