"""nacrith-codec: lossless compression with a small language model and a range coder.

The API follows the standard library's ``lzma`` module:

>>> import nacrith_codec
>>> packed = nacrith_codec.compress(b"Alice was beginning to get very tired.")
>>> nacrith_codec.decompress(packed)
b'Alice was beginning to get very tired.'

Every decode is verified; anything but a complete stream of the model is an error:

>>> nacrith_codec.decompress(packed[:-1])
Traceback (most recent call last):
    ...
nacrith_codec.errors.TruncatedError: the compressed data ends before the end of ...

Importing this package is cheap: llama.cpp and the model load on first use.
The tree follows the data: segments/ -> tokens/ -> engines/ (logits) -> predictions/
-> bits/, with container/ for the stream format and pipeline/ for a block's way
through them; api.py, file.py, cli.py and plugins/ are the front ends.
It registers ``compression="nacrith"`` with fsspec (which has no entry point
for compressions; the ``nacrith::`` filesystem needs no import).
"""

from .api import NacrithCompressor, NacrithDecompressor, compress, decompress
from .config import CodecConfig
from .errors import (CacheNotice, CacheWarning, ConflictError, CorruptError, EnvironmentMismatchError,
                     FormatError,
                     MemoryLimitError,
                     ModelMismatchError, ModelNotFoundError, NacrithError, TruncatedError,
                     VerifyError)
from .file import NacrithFile, open

__all__ = [
    "CacheNotice", "CacheWarning", "CodecConfig", "ConflictError", "CorruptError", "EnvironmentMismatchError", "FormatError", "MemoryLimitError",
    "ModelMismatchError",
    "ModelNotFoundError", "NacrithCompressor", "NacrithDecompressor", "NacrithError", "NacrithFile",
    "TruncatedError", "VerifyError", "compress", "decompress", "open",
]
__version__ = "0.1.0"

from .plugins import fsspec_compression as _fsspec_compression  # noqa: E402,F401  (registers it)
