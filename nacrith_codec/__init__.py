"""nacrith-codec: lossless compression with a small language model and a range coder.

The API follows the standard library's ``lzma`` module::

    import nacrith_codec
    packed = nacrith_codec.compress(b"some text")
    assert nacrith_codec.decompress(packed) == b"some text"

Importing this package is cheap: llama.cpp and the model load on first use.
It registers ``compression="nacrith"`` with fsspec (which has no entry point
for compressions; the ``nacrith::`` filesystem needs no import).
"""

from .api import NacrithCompressor, NacrithDecompressor, compress, decompress
from .config import CodecConfig
from .errors import (CorruptError, EnvironmentMismatchError, FormatError, MemoryLimitError,
                     ModelMismatchError, ModelNotFoundError, NacrithError, TruncatedError,
                     VerifyError)
from .file import NacrithFile, open

__all__ = [
    "CodecConfig", "CorruptError", "EnvironmentMismatchError", "FormatError", "MemoryLimitError",
    "ModelMismatchError",
    "ModelNotFoundError", "NacrithCompressor", "NacrithDecompressor", "NacrithError", "NacrithFile",
    "TruncatedError", "VerifyError", "compress", "decompress", "open",
]
__version__ = "0.1.0"

from .plugins import fsspec_compression as _fsspec_compression  # noqa: E402,F401  (registers it)
