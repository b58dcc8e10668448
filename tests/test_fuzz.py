"""Fuzzing the container parser and the decoder: mutated, truncated, extended, re-chunked
and random streams give back the original bytes or raise a NacrithError subclass, never
anything else, never wrong bytes, within bounded time and memory.

The regular run tries a bounded number of cases; ``NACRITH_FUZZ_SCALE=50`` multiplies
every budget (docs/guarantees.md, "Reliability"), and tests/fuzz_atheris.py is the coverage-guided
harness for atheris.
"""

import contextlib
import io
import os
import random
import signal
import struct
import tracemalloc
import zlib

import pytest
from hypothesis import HealthCheck, event, given, settings, strategies as st

import nacrith_codec as nc
from nacrith_codec import container
from nacrith_codec.config import CodecConfig
from conftest import SMALL, forge_first_block

SCALE = int(os.environ.get("NACRITH_FUZZ_SCALE", "1"))
PARSER_MEMORY = 32 << 20  # bytes the parser may allocate for any input of these sizes
HANG = 120  # seconds: far beyond any case here; only a hang reaches it


def budget(examples):
    return settings(max_examples=examples * SCALE, deadline=None, derandomize=SCALE == 1,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow, HealthCheck.data_too_large])


@contextlib.contextmanager
def bounded_time(seconds=HANG):
    def hang(signum, frame):
        raise AssertionError(f"no answer within {seconds} s: a hang")

    previous = signal.signal(signal.SIGALRM, hang)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture(scope="module")
def streams(english):
    """Real streams: text (the model), text with zeros and random bytes (three methods),
    several blocks, and random bytes only (stored)."""
    noise = random.Random(11).randbytes(200)
    return {
        "text": (english[:100], nc.compress(english[:100], **SMALL)),
        "mixed": (english[:40] + bytes(40) + noise, nc.compress(english[:40] + bytes(40) + noise,
                                                               **SMALL)),
        "blocks": (english[:150], nc.compress(english[:150], block_size=60, **SMALL)),
        "stored": (noise, nc.compress(noise, **SMALL)),
    }


def mutate(data: bytes, edits) -> bytes:
    out = bytearray(data)
    for kind, where, value in edits:
        i = where % (len(out) + 1)
        if kind == "set" and i < len(out):
            out[i] = value
        elif kind == "xor" and i < len(out):
            out[i] ^= 1 << (value % 8)
        elif kind == "insert":
            out[i:i] = bytes([value])
        elif kind == "delete":
            del out[i:i + 1 + value % 8]
        elif kind == "cut":
            del out[i:]
        elif kind == "extend":
            out += bytes([value]) * (1 + where % 64)
    return bytes(out)


EDITS = st.lists(st.tuples(st.sampled_from(["set", "xor", "insert", "delete", "cut", "extend"]),
                           st.integers(0, 1 << 16), st.integers(0, 255)), min_size=1, max_size=6)
NAMES = st.sampled_from(["text", "mixed", "blocks", "stored"])


def parse_all(buf: bytes):
    """The container alone, as the decompressor walks it: header, records, end."""
    parsed = container.parse_header(buf)
    if parsed is None:
        raise nc.TruncatedError("header")
    header, pos = parsed
    blocks = 0
    while True:
        parsed = container.parse_record(buf, pos, header, blocks)
        if parsed is None:
            raise nc.TruncatedError("record")
        record, pos = parsed
        if isinstance(record, container.End):
            return record
        blocks += 1


def decoded_or_error(data: bytes, original: bytes, reader):
    """``reader(data)`` returns the original or raises a NacrithError; nothing else."""
    try:
        with bounded_time():
            out = reader(data)
    except nc.NacrithError as exc:
        event(f"outcome: {type(exc).__name__}")  # pytest --hypothesis-show-statistics
        return
    assert out == original, "wrong bytes decoded without an error"
    event("outcome: the original bytes")


def parse_bounded(buf: bytes):
    """parse_all, which may only raise NacrithErrors, within the parser's memory bound."""
    tracemalloc.start()
    try:
        with bounded_time():
            parse_all(buf)
        event("outcome: parsed")
    except nc.NacrithError as exc:
        event(f"outcome: {type(exc).__name__}")
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peak < PARSER_MEMORY


@budget(1000)
@given(name=NAMES, edits=EDITS)
def test_parser_on_mutated_streams(streams, name, edits):
    parse_bounded(mutate(streams[name][1], edits))


@budget(300)
@given(name=NAMES, edits=EDITS)
def test_decoder_on_mutated_streams(streams, name, edits):
    original, packed = streams[name]
    decoded_or_error(mutate(packed, edits), original, nc.decompress)


@budget(100)
@given(name=NAMES, edits=EDITS, cuts=st.lists(st.integers(1, 64), max_size=8))
def test_incremental_decoder_and_file_reader_on_mutated_streams(streams, name, edits, cuts):
    """The same, through the incremental decompressor fed in random pieces, and through
    NacrithFile over a seekable file (the random-access reader, which trusts the footer)."""
    original, packed = streams[name]
    damaged = mutate(packed, edits)

    def incremental(data):
        d, out, pos = nc.NacrithDecompressor(), [], 0
        for size in cuts + [len(data)]:
            out.append(d.decompress(data[pos:pos + size]))
            pos += size
        if not d.eof or d.unused_data:
            raise nc.TruncatedError("incomplete") if not d.eof else nc.FormatError("trailing")
        return b"".join(out)

    decoded_or_error(damaged, original, incremental)
    decoded_or_error(damaged, original, lambda data: nc.NacrithFile(io.BytesIO(data)).read())


@budget(40)
@given(name=st.sampled_from(["text", "mixed", "blocks"]), payload=st.binary(max_size=64),
       counts=st.lists(st.integers(0, 200), max_size=3), digest=st.binary(min_size=8, max_size=8))
def test_decoder_on_forged_blocks_with_valid_checksums(streams, name, payload, counts, digest):
    """Blocks whose CRCs are right but whose content is not: the model runs, and the
    content digest (or a structural check) must catch it."""
    from dataclasses import replace
    original, packed = streams[name]

    def forge(b):
        changes = {"payload": payload or b.payload, "digest": digest}
        if counts and b.counts:
            changes["counts"] = tuple(counts)
        return replace(b, **changes)

    try:
        forged = forge_first_block(packed, forge)
    except (ValueError, struct.error):
        return  # not even packable
    decoded_or_error(forged, original, nc.decompress)


@budget(300)
@given(body=st.binary(max_size=300), version=st.sampled_from(container.READABLE))
def test_random_headers_with_valid_checksums(body, version):
    head = bytes([version]) + struct.pack("<H", len(body)) + body
    stream = container.MAGIC + head + struct.pack("<I", zlib.crc32(head))
    with pytest.raises(nc.NacrithError):
        with bounded_time():
            nc.decompress(stream + bytes(16))


@budget(300)
@given(fields=st.fixed_dictionaries({
    name: st.integers(0, 1 << 32) for name in ("block_size", "streams", "window", "slide",
                                                "ngram_bits", "ngram_order", "float_bits")}),
    tail=st.binary(max_size=64))
def test_hostile_header_values_are_refused_or_bounded(fields, tail):
    """Any values in a well-formed header: refused, or the stream fails without the
    parser allocating beyond its bound."""
    config = CodecConfig()
    for name, value in fields.items():
        object.__setattr__(config, name, value)
    parse_bounded(container.pack_header(container.Header(config, bytes(32), "m", {})) + tail)


@budget(200)
@given(data=st.binary(max_size=2000))
def test_random_bytes(data):
    for candidate in (data, container.MAGIC + data, container.MAGIC + bytes([container.VERSION]) + data):
        with pytest.raises(nc.NacrithError):
            with bounded_time():
                nc.decompress(candidate)
