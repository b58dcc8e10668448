"""The stream format: a header, blocks, an end record, in one place.

    stream  := header block* end
    (header.py: the header and each version's fields; records.py: blocks, the END
    record and the footer; fields.py: varints, checksums)

Version 5 binds every block to its place: a block's CRC is seeded with the
stream key (a hash of the header's bytes) and the block's number, and the END
record carries a digest of every block's digest in order (framing.py), so that a
record moved, repeated, dropped or taken from another stream is an error, never
other bytes.

The END record indexes every block, and the fixed footer lets a reader find
it from the end of the file: the logical size and the offset of any block are
known from two small reads (index.py: random access, listings).

Every record carries a CRC-32 of its own bytes, so any damage to the stream is
detected before decoding; blocks also carry a BLAKE2b-64 digest of the
original bytes, so a decode that went wrong (another model, another llama.cpp
build) is detected after it.  The stream is self-delimiting: bytes after the
END record are not read; what may follow it is sequence.py's rule.
"""

from .fields import content_digest, digest
from .framing import StreamWriter, Tally, check_content
from .header import (BOUND, COMPACT, FIELDS, MAGIC, READABLE, V6_DEFAULTS, V6_MODEL_BYTES,
                     VERSION, Header, env_data, env_text, key_of, not_a_stream, pack_header,
                     parse_header, starts_stream, stream_key)
from .records import (FOOTER_MAGIC, FOOTER_SIZE, KIND_END, KIND_MODEL, KIND_SEGMENTED,
                      KIND_STORED, TOKENS_PER_BYTE, TOKENS_SLACK, Block, End, bind,
                      max_segments, max_tokens, pack_end, pack_segmented, parse_record,
                      parse_tail)

#: The file name suffix of nacrith streams (``FILE`` -> ``FILE.nc``).
SUFFIX = ".nc"


def compressed_name(name: str) -> str:
    """The name of ``name``'s compressed file."""
    return name + SUFFIX


def original_name(name: str) -> str | None:
    """The original's name for a compressed file's ``name``; None without the suffix."""
    return name[:-len(SUFFIX)] if name.endswith(SUFFIX) and len(name) > len(SUFFIX) else None


__all__ = [
    "BOUND", "COMPACT", "FIELDS", "FOOTER_MAGIC", "FOOTER_SIZE", "KIND_END", "KIND_MODEL",
    "KIND_SEGMENTED", "KIND_STORED", "MAGIC", "READABLE", "SUFFIX", "TOKENS_PER_BYTE",
    "TOKENS_SLACK", "V6_DEFAULTS", "V6_MODEL_BYTES", "VERSION", "Block", "End", "Header",
    "StreamWriter", "Tally", "bind", "check_content", "compressed_name", "content_digest",
    "digest", "env_data", "env_text", "key_of", "max_segments", "max_tokens", "not_a_stream",
    "original_name", "pack_end", "pack_header", "pack_segmented", "parse_header",
    "parse_record", "parse_tail", "starts_stream", "stream_key",
]
