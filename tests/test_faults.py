"""Faults: a failing llama_decode, a full KV cache, writes failing midway, a killed
command, a compressor producing a bad stream.  Each ends in an exception or an exit
code, never in a complete-looking partial file."""

import io
import itertools
import os
import signal
import subprocess
import sys
import time

import fsspec
import pytest

import nacrith_codec as nc
from nacrith_codec import cli
from nacrith_codec.bits import range_coder as coder
from conftest import SMALL, default_sigint

SMALL_ARGS = ["--streams", "2", "--window", "48", "--slide", "16", "--engine", "llama.cpp"]


@pytest.fixture
def failing_decode(monkeypatch):
    """llama_decode fails (returns 1, as for a KV cache with no free slot) from its 6th call."""
    import llama_cpp
    real, calls = llama_cpp.llama_decode, itertools.count()

    def decode(ctx, batch):
        return 1 if next(calls) >= 5 else real(ctx, batch)

    monkeypatch.setattr(llama_cpp, "llama_decode", decode)


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".nacrith-"))


def test_a_failing_llama_decode_is_an_error_when_compressing(english, failing_decode):
    with pytest.raises(nc.NacrithError, match="llama_decode failed with code 1"):
        nc.compress(english[:300], **SMALL)


def test_a_failing_llama_decode_is_an_error_when_decompressing(english, monkeypatch):
    packed = nc.compress(english[:300], **SMALL)
    import llama_cpp
    real, calls = llama_cpp.llama_decode, itertools.count()
    monkeypatch.setattr(llama_cpp, "llama_decode",
                        lambda c, b: 1 if next(calls) >= 5 else real(c, b))
    with pytest.raises(nc.NacrithError, match="llama_decode failed"):
        nc.decompress(packed)
    monkeypatch.undo()
    assert nc.decompress(packed) == english[:300]  # the pooled context recovers


def test_a_full_kv_cache_is_an_error(alice, monkeypatch):
    """llama.cpp really runs out of cache cells: the context it is asked for is smaller
    than the window (256 cells per stream, its minimum, for a 1,024-token window)."""
    import llama_cpp
    real = llama_cpp.llama_init_from_model

    def small_context(model, params):
        params.n_ctx = 256
        return real(model, params)

    monkeypatch.setattr(llama_cpp, "llama_init_from_model", small_context)
    with pytest.raises(nc.NacrithError, match="code 1 .no free KV cache cell"):
        nc.compress(alice[:2600], streams=2, window=1024, slide=256, engine="llama.cpp")


def test_cli_leaves_no_output_when_the_model_fails(tmp_path, english, failing_decode):
    src = tmp_path / "a.txt"
    src.write_bytes(english[:300])
    assert cli.main([str(src), "-q", *SMALL_ARGS]) == 1
    assert not (tmp_path / "a.txt.nc").exists() and not _leftovers(tmp_path)


class _FailingFile(io.RawIOBase):
    """A file whose writes fail once ``limit`` bytes were written (a full disk)."""

    def __init__(self, limit):
        self.data, self.limit = bytearray(), limit

    def writable(self):
        return True

    def write(self, b):
        if len(self.data) + len(b) > self.limit:
            raise OSError(28, "No space left on device")
        self.data += b
        return len(b)


def test_a_write_failing_midway_leaves_a_stream_without_its_end(english):
    limit = len(nc.compress(english, block_size=256, **SMALL)) // 2  # the disk fills midway
    target = _FailingFile(limit=limit)
    f = nc.NacrithFile(target, "w", block_size=256, **SMALL)
    with pytest.raises(OSError, match="No space"):
        with f:
            for i in range(0, 1200, 100):
                f.write(english[i:i + 100])
    assert f.broken and f.closed
    assert 0 < len(target.data) <= limit
    with pytest.raises(nc.TruncatedError):
        nc.decompress(bytes(target.data))


def test_an_exception_in_the_with_block_abandons_the_stream(english, tmp_path):
    path = tmp_path / "x.nc"
    with pytest.raises(KeyError):
        with nc.open(path, "wb", **SMALL) as f:
            f.write(english[:100])
            raise KeyError("the producer failed")
    with pytest.raises(nc.TruncatedError):
        nc.decompress(path.read_bytes())
    with pytest.raises(KeyError):
        with nc.open(path, "wt", encoding="utf-8", **SMALL) as f:
            f.write(english[:100].decode())
            raise KeyError("the producer failed")
    with pytest.raises(nc.TruncatedError):
        nc.decompress(path.read_bytes())
    with nc.open(path, "wt", encoding="utf-8", **SMALL) as f:  # and a clean close ends it
        f.write(english[:100].decode())
    assert nc.decompress(path.read_bytes()) == english[:100]


def test_nacrith_filesystem_publishes_only_complete_files(english, tmp_path):
    fs = fsspec.filesystem("nacrith", target_protocol="file", **SMALL)
    good, bad = str(tmp_path / "good.txt"), str(tmp_path / "bad.txt")
    with fs.open(good, "wb") as f:
        f.write(english[:150])
    with pytest.raises(RuntimeError):
        with fs.open(bad, "wb") as f:
            f.write(english[:150])
            raise RuntimeError("the producer failed")
    assert sorted(os.listdir(tmp_path)) == ["good.txt.nc"]  # no partial object, no temp file
    assert fs.cat(good) == english[:150]


def test_partial_and_foreign_objects_are_listed_without_a_size(english):
    mem = fsspec.filesystem("memory")
    mem.pipe("/faults/ok.txt.nc", nc.compress(english[:80], **SMALL))
    mem.pipe("/faults/cut.txt.nc", nc.compress(english[:80], **SMALL)[:-20])
    mem.pipe("/faults/other.txt.nc", b"CDF\x01 a NetCDF file, not ours")
    fs = fsspec.filesystem("nacrith", fs=mem)
    entries = {e["name"].rsplit("/", 1)[-1]: e for e in fs.ls("/faults")}
    assert entries["ok.txt"]["size"] == 80
    assert entries["cut.txt"]["size"] is None  # its end record is missing
    assert entries["other.txt"]["size"] is None and "magic" in entries["other.txt"]["error"]
    with pytest.raises(nc.TruncatedError):
        fs.cat("/faults/cut.txt")


def test_cli_reports_a_full_disk_on_stdout(english, tmp_path):
    src = tmp_path / "a.txt"
    src.write_bytes(english[:120])
    with open("/dev/full", "wb") as full:
        r = subprocess.run([sys.executable, "-m", "nacrith_codec.cli", "-c", str(src),
                            *SMALL_ARGS], stdout=full, stderr=subprocess.PIPE, timeout=600)
    assert r.returncode == 1 and b"No space left" in r.stderr


@pytest.mark.parametrize("signum, status", [(signal.SIGTERM, 143), (signal.SIGINT, 130),
                                            (signal.SIGKILL, -signal.SIGKILL)])
def test_a_killed_cli_run_leaves_no_output(alice, tmp_path, signum, status):
    src = tmp_path / "book.txt"
    src.write_bytes(alice[:30000])
    proc = subprocess.Popen([sys.executable, "-m", "nacrith_codec.cli", str(src), "-q",
                             *SMALL_ARGS], stderr=subprocess.PIPE, preexec_fn=default_sigint)
    deadline = time.monotonic() + 300
    while not _leftovers(tmp_path):  # the temporary output exists: coding has begun
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline
        time.sleep(0.2)
    time.sleep(1.0)
    proc.send_signal(signum)
    assert proc.wait(timeout=120) == status
    assert not (tmp_path / "book.txt.nc").exists()
    if signum != signal.SIGKILL:  # cleanup ran; SIGKILL leaves only the hidden temp file
        assert not _leftovers(tmp_path)


#: Ctrl-C while llama.cpp loads the model: the main thread's only Python code then runs in
#: llama.cpp's log callback, where a KeyboardInterrupt used to be printed by ctypes and dropped.
INTERRUPTED_LOAD = """
import os, signal, sys, threading, time
from nacrith_codec.engines import llamacpp
from nacrith_codec.engines.model_file import resolve_model_path
path = str(resolve_model_path(None))
llamacpp._llama()
loads = 0
def interrupt():
    time.sleep(float(sys.argv[1]))
    os.kill(os.getpid(), signal.SIGINT)
threading.Thread(target=interrupt).start()
kept = []  # (a model freed by the garbage collector frees it in a finalizer, whose
try:       # exceptions Python prints and drops: not what this test is about)
    while loads < 40:  # load after load, so the signal lands within one
        kept.append(llamacpp.Model(path))
        loads += 1
    print("not interrupted after", loads, "loads")
except KeyboardInterrupt:
    print("interrupted after", loads, "loads")
"""


@pytest.mark.parametrize("delay", [0.05, 0.3])
def test_ctrl_c_while_the_model_loads_interrupts_it(delay):
    r = subprocess.run([sys.executable, "-c", INTERRUPTED_LOAD, str(delay)],
                       capture_output=True, timeout=120, preexec_fn=default_sigint)
    assert r.stdout.startswith(b"interrupted after"), (r.stdout, r.stderr[-2000:])


def test_verify_passes_a_good_stream(english, tmp_path):
    assert nc.decompress(nc.compress(english[:200], verify=True, **SMALL)) == english[:200]
    src = tmp_path / "a.txt"
    src.write_bytes(english[:200])
    r = subprocess.run([sys.executable, "-m", "nacrith_codec.cli", "--verify", str(src),
                        *SMALL_ARGS], capture_output=True, timeout=600)
    assert r.returncode == 0 and b"(verified)" in r.stderr, r.stderr


def test_verify_catches_an_encoder_that_writes_a_bad_stream(english, monkeypatch, tmp_path):
    real = coder.SymbolEncoder.finish

    def damaged(self):
        out = bytearray(real(self))
        out[len(out) // 2] ^= 0x10
        return bytes(out)

    monkeypatch.setattr(coder.SymbolEncoder, "finish", damaged)
    bad = nc.compress(english[:200], **SMALL)  # without verify: written, and undecodable
    with pytest.raises(nc.CorruptError):
        nc.decompress(bad)
    with pytest.raises(nc.VerifyError, match="verification failed"):
        nc.compress(english[:200], verify=True, **SMALL)
    src = tmp_path / "a.txt"
    src.write_bytes(english[:200])
    assert cli.main([str(src), "-q", "--verify", *SMALL_ARGS]) == 1
    assert not (tmp_path / "a.txt.nc").exists() and not _leftovers(tmp_path)
