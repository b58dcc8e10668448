"""Hostile and failing inputs: blocks bound to their place, a bounded decoder, exit status 1.

Every stream here is real (written by the codec, then changed by hand with valid
CRCs where the point is a check after them); memory is the process's own account
(VmRSS / VmHWM), and work is counted in llama_decode calls, not in seconds.
"""

import dataclasses
import io
import os
import random
import resource
import subprocess
import sys
import time

import pytest

import nacrith_codec as nc
from conftest import EXACT_SMALL, SMALL, reframe, stream_parts
from nacrith_codec import container
from nacrith_codec.engines import llamacpp as llm
from nacrith_codec.pipeline import workers
from nacrith_codec.segments import classical
from nacrith_codec.config import CodecConfig
from nacrith_codec.engines.model_file import fingerprint, resolve_model_path

CLI = [sys.executable, "-m", "nacrith_codec.cli"]


def _records(packed: bytes) -> tuple[bytes, list, bytes]:
    """(header bytes, block records, END record with footer) of a one-stream file."""
    _, head, blocks, end = stream_parts(packed)
    return head, [record for _, record in blocks], end


def _vm(field: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) << 10 for line in f if line.startswith(field))


@pytest.fixture(scope="module")
def stored():
    """Two streams of three equal-length stored blocks each, with identical headers."""
    rng = random.Random(17)
    a, b = rng.randbytes(900), rng.randbytes(900)
    return a, nc.compress(a, block_size=300, **SMALL), b, nc.compress(b, block_size=300, **SMALL)


# -- blocks bound to their place -------------------------------------------------------

def _both_readers_refuse(packed: bytes, tmp_path, error=nc.CorruptError):
    with pytest.raises(error):
        nc.decompress(packed)
    path = tmp_path / "x.nc"
    path.write_bytes(packed)
    with pytest.raises(error), nc.open(path) as f:  # the random-access reader
        f.read()


def test_swapped_or_repeated_blocks_are_an_error(stored, tmp_path):
    _, packed, _, _ = stored
    head, records, end = _records(packed)
    assert len({len(r) for r in records}) == 1  # equal lengths: the index cannot tell
    swapped = head + records[1] + records[0] + records[2] + end
    repeated = head + records[0] + records[0] + records[2] + end
    for bad in (swapped, repeated):
        _both_readers_refuse(bad, tmp_path)
    with pytest.raises(nc.CorruptError, match="moved, repeated or taken"):
        nc.decompress(swapped)


def test_a_block_spliced_from_another_stream_is_an_error(stored, tmp_path):
    a, packed_a, _, packed_b = stored
    head_a, ra, end_a = _records(packed_a)
    head_b, rb, _ = _records(packed_b)
    assert head_a == head_b  # the same settings and size: one stream key
    spliced = head_a + ra[0] + rb[1] + ra[2] + end_a
    with pytest.raises(nc.CorruptError, match="taken from another stream"):
        nc.decompress(spliced)
    _both_readers_refuse(spliced, tmp_path)
    # a block of a stream with another header fails at once, by its CRC
    other = nc.compress(a, block_size=300, **{**SMALL, "window": 64})
    with pytest.raises(nc.CorruptError, match="checksum mismatch"):
        nc.decompress(head_a + ra[0] + _records(other)[1][1] + ra[2] + end_a)
    # each block still reads alone (random access) and the whole stream reads in order
    path = tmp_path / "a.nc"
    path.write_bytes(packed_a)
    with nc.open(path) as f:
        f.seek(450)
        assert f.read(100) == a[450:550]
        f.seek(0)
        assert f.read() == a


# -- resources a header can demand -----------------------------------------------------

def _hostile(config: CodecConfig, content_size=None, data=b"x") -> bytes:
    """A stream of the bundled model with ``config``: one stored block of ``data``, or
    none for ``data=None``."""
    model = container.parse_header(nc.compress(b"x", **SMALL))[0]
    writer = container.StreamWriter(container.Header(
        config, model.model_sha256, model.model_name, model.env, content_size))
    blocks = [] if data is None else [writer.block(container.pack_segmented(
        len(data), ((classical.RAW, len(data)),), container.digest(data), {classical.RAW: data}),
        len(data))]
    return writer.head + b"".join(blocks) + writer.end()


def test_a_header_asking_for_gigabytes_is_refused_before_allocating(tmp_path):
    huge = _hostile(CodecConfig(streams=64, window=8192, slide=256))
    assert len(huge) < 400  # a few hundred bytes
    assert nc.decompress(_hostile(CodecConfig(streams=64, window=8192, slide=256), data=None)) \
        == b""  # no block, nothing to allocate
    nc.decompress(nc.compress(b"warm up", **EXACT_SMALL))  # the model is loaded, as huge's
    before = _vm("VmRSS")                                  # engine (the default) needs it
    with pytest.raises(nc.MemoryLimitError, match=r"needs about \d+,\d{3} MiB.*NACRITH_MEMLIMIT"):
        nc.decompress(huge)
    with pytest.raises(nc.MemoryLimitError):
        nc.NacrithDecompressor().decompress(huge)
    path = tmp_path / "huge.nc"
    path.write_bytes(huge)
    with pytest.raises(nc.MemoryLimitError), nc.open(path) as f:
        f.read()
    assert _vm("VmRSS") - before < 64 << 20
    r = subprocess.run([*CLI, "-d", "-c", str(path)], capture_output=True, timeout=600)
    assert r.returncode == 1 and b"--memlimit" in r.stderr and b"Traceback" not in r.stderr


def test_the_memory_limit_is_an_option_an_environment_variable_and_a_cli_flag(english, tmp_path):
    packed = nc.compress(english[:200], **{**SMALL, "streams": 8, "window": 1024, "slide": 256})
    with pytest.raises(nc.MemoryLimitError, match="over the memory limit of 100 MiB"):
        nc.decompress(packed, memlimit="100MiB")
    assert nc.decompress(packed, memlimit=0) == english[:200]
    path = tmp_path / "a.txt.nc"
    path.write_bytes(packed)
    env = {**os.environ, "NACRITH_MEMLIMIT": "100M"}
    r = subprocess.run([*CLI, "-d", "-c", str(path)], capture_output=True, env=env, timeout=600)
    assert r.returncode == 1 and b"MemoryLimitError" in r.stderr
    r = subprocess.run([*CLI, "-d", "-c", "--memlimit", "1GiB", str(path)], capture_output=True,
                       env=env, timeout=600)
    assert r.returncode == 0 and r.stdout == english[:200], r.stderr
    r = subprocess.run([*CLI, "-d", "-c", "--memlimit", "lots", str(path)], capture_output=True)
    assert r.returncode == 2 and b"invalid memory limit" in r.stderr


def test_the_memory_limit_reaches_fsspec_and_py7zr(english, tmp_path, monkeypatch):
    import fsspec
    import py7zr

    from nacrith_codec.plugins.sevenzip import FILTER_NACRITH
    config = {"streams": 8, "window": 1024, "slide": 256}
    with fsspec.open("nacrith::memory://limits/a.txt", "wb", nacrith=config) as f:
        f.write(english[:100])
    with pytest.raises(nc.MemoryLimitError), fsspec.open(
            "nacrith::memory://limits/a.txt", "rb", nacrith={"memlimit": "100MiB"}) as f:
        f.read()
    with fsspec.open("nacrith::memory://limits/a.txt", "rb") as f:
        assert f.read() == english[:100]
    archive = tmp_path / "a.7z"
    with py7zr.SevenZipFile(archive, "w", filters=[{"id": FILTER_NACRITH}]) as z:
        z.writestr(english[:100], "a.txt")
    monkeypatch.setenv("NACRITH_MEMLIMIT", "100MiB")
    with pytest.raises(nc.MemoryLimitError), py7zr.SevenZipFile(archive) as z:
        z.extractall(tmp_path / "out")


_PEAK = """
import sys
import nacrith_codec as nc
from nacrith_codec import container
from nacrith_codec.engines import Engine
from nacrith_codec.engines.model_file import resolve_model_path
def vm(field):
    return next(int(l.split()[1]) << 10 for l in open("/proc/self/status") if l.startswith(field))
import numpy as np
from nacrith_codec.config import CodecConfig
from nacrith_codec.engines.model_file import fingerprint, resolve_model_path
packed = sys.stdin.buffer.read()
config = container.parse_header(packed)[0].config
engine = Engine.get(str(resolve_model_path(None)), kind=config.engine)
with engine.context(CodecConfig(streams=1, window=8, slide=1, sink=0)) as ctx:
    ctx.push(np.array([engine.model.bos], dtype=np.int32))  # the model's pages resident:
    ctx.step([0])  # what the header decides is measured, not the model file
open("/proc/self/clear_refs", "w").write("5")  # the peak of loading forgotten (Linux >= 4.0)
base = vm("VmRSS")
nc.decompress(packed)
print(vm("VmHWM") - base, engine.check_memory(config, 0))
"""


def test_the_memory_a_header_asks_for_bounds_what_decoding_takes(alice):
    text = alice[20000:22000]  # the context is allocated whole whatever the length
    packed = nc.compress(text, streams=8, window=1024, slide=256, min_stream_tokens=16)
    r = subprocess.run([sys.executable, "-c", _PEAK], input=packed, capture_output=True,
                       timeout=600)
    used, bound = map(int, r.stdout.split())
    assert 0 < used <= bound, (used, bound, r.stderr)


def test_a_long_lived_decoder_keeps_a_bounded_number_of_contexts(english):
    import gc
    streams = [nc.compress(english[:120], **{**SMALL, "slide": slide}) for slide in range(8, 14)]
    for packed in streams:  # settings that differ only in the slide: one context each
        assert nc.decompress(packed) == english[:120]
    gc.collect()
    engine = nc.NacrithDecompressor().engine
    live = [o for o in gc.get_objects()  # type(): a dead weakref.proxy (numba's) must not be
            if issubclass(type(o), llm.Context) and o.model is engine.model]  # dereferenced
    assert engine.idle_contexts() <= 2
    assert len(live) <= 2  # the evicted ones are freed, not merely forgotten
    for slide in range(8, 16):  # worker processes keep a bounded set of coders too
        workers.local_coder(nc.NacrithDecompressor()._model_path, 0, None,
                            CodecConfig(**{**SMALL, "slide": slide}))
    assert len(workers._coders) <= workers.KEPT_CODERS


# -- work bounded by the payload -------------------------------------------------------

@pytest.fixture
def steps(monkeypatch):
    """Counts llama_decode calls (the model's work) made through llm.Context.step."""
    count = [0]
    real = llm.Context.step

    def counted(self, rows):
        count[0] += 1
        return real(self, rows)

    monkeypatch.setattr(llm.Context, "step", counted)
    return count


def _claiming(packed: bytes, tokens: int, payload: bytes, version=None) -> bytes:
    """``packed`` (one model-coded text block) with its block claiming ``tokens`` tokens in
    one stream for ``payload``, under format ``version``; valid CRCs and digests aside."""
    header = container.parse_header(packed)[0]
    if version is not None:  # an older header: the whole SHA-256, no key
        sha = bytes.fromhex(fingerprint(resolve_model_path()))
        header = dataclasses.replace(header, version=version, key=b"", model_sha256=sha)
    return reframe(packed, header, lambda b: dataclasses.replace(
        b, raw_len=tokens, segments=((classical.MODEL, tokens),), counts=(tokens,), coded={},
        payload=payload))


def test_a_block_claiming_more_tokens_than_its_payload_holds_is_refused_up_front(
        english, steps):
    packed = nc.compress(english[:200], **SMALL)
    assert classical.MODEL in stream_parts(packed)[2][0][0].methods()
    bad = _claiming(packed, 5000, bytes(8))
    steps[0] = 0
    with pytest.raises(nc.CorruptError, match="claims 5000 tokens for a payload of 8 bytes"):
        nc.decompress(bad)
    assert steps[0] == 0


def test_an_old_version_block_stops_when_its_payload_runs_out(english, steps):
    packed = nc.compress(english[:200], **SMALL)
    bad = _claiming(packed, 20000, random.Random(1).randbytes(8), version=4)
    steps[0] = 0
    with pytest.raises(nc.CorruptError, match="ran past its end|range decoder failed"):
        nc.decompress(bad)
    assert 0 < steps[0] < 2000  # the claim was 20,000 model steps


def test_a_payload_longer_than_its_tokens_is_an_error(english):
    packed = nc.compress(english[:200], **SMALL)
    bad = reframe(packed, mutate=lambda b: dataclasses.replace(b, payload=b.payload + bytes(8)))
    with pytest.raises(nc.CorruptError):
        nc.decompress(bad)


def test_written_blocks_keep_the_token_bound(alice):
    line = b"GET /index.html HTTP/1.1 200\n"
    packed = nc.compress(alice[3000:3300] + line * 80, block_size=1000, **SMALL)
    for block, _ in stream_parts(packed)[2]:
        if block.counts:
            assert sum(block.counts) <= container.max_tokens(len(block.payload))
    assert nc.decompress(packed) == alice[3000:3300] + line * 80


# -- every failure a documented exception ----------------------------------------------

@pytest.mark.parametrize("env", ["[" * 3000 + "]" * 3000, "[[1, 2]]", '{"cpu": {"a": 1}}',
                                 '{"a": 1, "b": [1, "x"]}', "not json"])
def test_a_strange_environment_in_the_header_fails_as_a_corrupt_stream(english, env, tmp_path,
                                                                      monkeypatch):
    packed = nc.compress(english[:120], **SMALL)
    header = container.parse_header(packed)[0]
    with monkeypatch.context() as m:  # a foreign writer's text, not this writer's JSON
        m.setattr(container.header, "env_text", lambda text: text)
        bad = reframe(packed, dataclasses.replace(header, env=env, key=b""),
                      lambda b: dataclasses.replace(b, digest=bytes(8)))
    for decode in (nc.decompress, lambda d: nc.NacrithDecompressor().decompress(d)):
        with pytest.raises(nc.CorruptError):
            decode(bad)
    path = tmp_path / "e.nc"
    path.write_bytes(bad)
    with pytest.raises(nc.CorruptError), nc.open(path) as f:
        f.read()
    for args in (["-d", "-c"], ["info"]):
        r = subprocess.run([*CLI, *args, str(path)], capture_output=True, timeout=600)
        assert b"Traceback" not in r.stderr and r.returncode == (1 if "-d" in args else 0)


def test_an_empty_stream_claiming_a_huge_size_fails_on_every_path(tmp_path):
    bad = _hostile(CodecConfig(**SMALL), content_size=1 << 62, data=None)
    with pytest.raises(nc.CorruptError):
        nc.decompress(bad)
    path = tmp_path / "e.nc"
    path.write_bytes(bad)
    with pytest.raises(nc.CorruptError), nc.open(path) as f:
        f.read()


# -- short writes, races --------------------------------------------------------------

class _Trickle(io.RawIOBase):
    """A raw file that takes at most 7 bytes a call, as a pipe or a filling disk may."""

    def __init__(self):
        self.data = bytearray()

    def writable(self):
        return True

    def write(self, b):
        piece = bytes(memoryview(b).cast("B")[:7])
        self.data += piece
        return len(piece)


def test_a_file_object_over_a_raw_file_writes_every_byte(english):
    raw = _Trickle()
    with nc.open(raw, "wb", **SMALL) as f:
        f.write(english[:150])
    assert nc.decompress(bytes(raw.data)) == english[:150]


def _limit_file_size():
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))  # writes past it are short, then fail


@pytest.mark.parametrize("unbuffered", ["", "1"])
def test_a_short_write_is_exit_status_1(tmp_path, unbuffered):
    src = tmp_path / "r.bin"
    src.write_bytes(random.Random(2).randbytes(50000))  # stored: no model work
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    if unbuffered:
        env["PYTHONUNBUFFERED"] = unbuffered
    with open(tmp_path / "out.nc", "wb") as out:
        r = subprocess.run([*CLI, "-c", str(src)], stdout=out, stderr=subprocess.PIPE, env=env,
                           preexec_fn=_limit_file_size, timeout=600)
    assert r.returncode == 1 and b"File too large" in r.stderr, r
    r = subprocess.run([*CLI, "-o", str(tmp_path / "o.nc"), "--rm", str(src)], env=env,
                       capture_output=True, preexec_fn=_limit_file_size, timeout=600)
    assert r.returncode == 1 and src.exists() and not (tmp_path / "o.nc").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".nacrith-")]


def test_two_runs_writing_one_name_do_not_overwrite_each_other(tmp_path, english):
    target = tmp_path / "same.nc"
    runs = [subprocess.Popen([*CLI, "-o", str(target), "-", "--streams", "2", "--window", "48",
                              "--slide", "16"], stdin=subprocess.PIPE, stderr=subprocess.PIPE)
            for _ in range(2)]
    deadline = time.monotonic() + 300
    while len([p for p in tmp_path.iterdir() if p.name.startswith(".nacrith-")]) < 2:
        assert time.monotonic() < deadline and all(p.poll() is None for p in runs)
        time.sleep(0.1)  # both checked that the name was free, and are writing
    first, second = runs
    first.communicate(english[:100], timeout=600)
    assert first.returncode == 0 and nc.decompress(target.read_bytes()) == english[:100]
    _, err = second.communicate(english[100:200], timeout=600)
    assert second.returncode == 1 and b"appeared while it was being written" in err
    assert nc.decompress(target.read_bytes()) == english[:100]
