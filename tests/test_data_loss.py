"""What an attack on the landed code found (issue 35): ways to lose a user's data, and
partial outputs that looked complete.  Each test failed on the code before its fix;
real subprocesses and signals for the command line, real py7zr archives, real fsspec
filesystems (local and memory://), the real model."""

import gc
import io
import os
import signal
import stat
import struct
import subprocess
import sys
import threading
import time
import warnings
import zlib

import fsspec
import numpy as np
import py7zr
import pytest

import nacrith_codec as nc
from nacrith_codec import cli
from nacrith_codec.output import NAME_MAX, Output, temporary_name
from nacrith_codec.plugins.sevenzip import FILTER_NACRITH
from conftest import SMALL, default_sigint, stream_parts

SMALL_ARGS = ["--streams", "2", "--window", "48", "--slide", "16"]
NACRITH = [sys.executable, "-m", "nacrith_codec.cli"]


def _run(args, cwd, **kwargs):
    return subprocess.run(NACRITH + args, cwd=cwd, capture_output=True, timeout=300, **kwargs)


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".nacrith-"))


# -- 1. an output that is the input

def test_an_output_that_is_the_input_is_refused_whatever_f_says(tmp_path, english):
    """gzip's and xz's rule: the same file by device and inode, not by name."""
    a = tmp_path / "a.bin"
    a.write_bytes(english[:200])
    os.link(a, tmp_path / "hard.bin")
    os.symlink("a.bin", tmp_path / "link.bin")
    for args in (["-f", "--rm", "-o", "a.bin", "a.bin"], ["-f", "--rm", "-o", "./a.bin", "a.bin"],
                 ["-d", "-f", "--rm", "-o", "a.bin", "a.bin"], ["-f", "-o", "hard.bin", "a.bin"],
                 ["-f", "--rm", "-o", "link.bin", "a.bin"]):
        r = _run(args + SMALL_ARGS, tmp_path)
        assert r.returncode == 1 and b"is the input itself" in r.stderr, (args, r.stderr)
        assert a.read_bytes() == english[:200], args
    with open(a, "rb") as stdin:  # standard input that is the output's file
        r = _run(["-f", "-o", "a.bin"] + SMALL_ARGS, tmp_path, stdin=stdin)
    assert r.returncode == 1 and a.read_bytes() == english[:200] and not _leftovers(tmp_path)


# -- 2. nacrith:: and compression="nacrith" when the block raises

class _Stop(Exception):
    pass


@pytest.mark.parametrize("raised", [_Stop, KeyboardInterrupt])
def test_nothing_partial_is_published_when_the_block_raises(base, english, raised):
    opts = dict(SMALL)
    fs = fsspec.filesystem("nacrith", target_protocol=base.split("://")[0], **opts)
    root = fs.fs._strip_protocol(base)
    fs.pipe_file(f"{root}/kept.txt", english[:50])
    writers = [  # every mode of every front end that writes a nacrith:: file
        lambda name, mode: fsspec.open(f"nacrith::{base}/{name}", mode, nacrith=opts),
        lambda name, mode: fs.open(f"{root}/{name}", mode)]
    for write in writers:
        for mode, name in (("wb", "new.txt"), ("w", "new.txt"), ("xb", "new.txt"),
                           ("ab", "kept.txt"), ("a", "kept.txt"), ("wb", "kept.txt")):
            with pytest.raises(raised):
                with write(name, mode) as f:
                    f.write(english[:300] if "b" in mode else english[:300].decode())
                    raise raised()
            assert not fs.exists(f"{root}/new.txt"), (mode, name)
            assert fs.cat_file(f"{root}/kept.txt") == english[:50], (mode, name)
    assert sorted(fs.fs.ls(root, detail=False)) == [f"{root}/kept.txt.nc"]
    # compression="nacrith" writes into the file itself: what is left reads as truncated
    url = f"{base}/c.txt.nc"
    for mode in ("wb", "wt"):
        with pytest.raises(raised):
            with fsspec.open(url, mode, compression="nacrith") as f:
                f.write(english[:300] if mode == "wb" else english[:300].decode())
                raise raised()
        with pytest.raises(nc.TruncatedError):
            with fsspec.open(url, "rb", compression="nacrith") as f:
                f.read()


def test_a_close_in_a_finally_clause_while_an_exception_propagates_abandons_the_stream(
        tmp_path, english):
    path = tmp_path / "f.nc"
    f = nc.open(path, "wb", **SMALL)
    with pytest.raises(_Stop):
        try:
            f.write(english[:300])
            raise _Stop
        finally:
            f.close()
    with pytest.raises(nc.TruncatedError):
        nc.decompress(path.read_bytes())
    try:  # an exception being handled when the file was opened does not count
        raise _Stop
    except _Stop:
        with nc.open(path, "wb", **SMALL) as f:
            f.write(english[:100])
    assert nc.decompress(path.read_bytes()) == english[:100]


# -- 3. an interrupted nacrith 7z a

def _small_archive(members, plain_header=False) -> bytes:
    buffer = io.BytesIO()
    z = py7zr.SevenZipFile(buffer, "w", filters=[{"id": FILTER_NACRITH, **SMALL}])
    z.encoded_header_mode = not plain_header  # plain: its fields can be forged in place
    for name, data in members:
        z.writestr(data, name)
    z.close()
    return buffer.getvalue()


def _members(archive, folder) -> dict:
    """What py7zr extracts from ``archive``: {name: bytes}."""
    with py7zr.SevenZipFile(archive) as z:
        z.extractall(folder)
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def _interrupt(args, cwd, sig):
    """Run ``nacrith 7z a ...``, and send ``sig`` once it has been coding a few seconds."""
    p = subprocess.Popen(NACRITH + ["7z", "a", "-q"] + args + SMALL_ARGS, cwd=cwd,
                         stderr=subprocess.PIPE, preexec_fn=default_sigint)
    start = time.monotonic()
    while not _leftovers(cwd) and time.monotonic() - start < 60:
        time.sleep(0.05)
    time.sleep(4)  # the model is loaded and the new member is being coded
    p.send_signal(sig)
    _, err = p.communicate(timeout=120)
    return p.returncode, err


def test_an_interrupted_7z_addition_leaves_the_archive_as_it_was(tmp_path, alice):
    archive = tmp_path / "old.7z"
    archive.write_bytes(_small_archive([("a.txt", alice[:400])]))
    os.chmod(archive, 0o640)
    before = archive.read_bytes()
    (tmp_path / "new.txt").write_bytes(alice[:20000])  # minutes of coding
    status, err = _interrupt(["old.7z", "new.txt"], tmp_path, signal.SIGINT)
    assert status == 255 and b"interrupted" in err, err
    assert archive.read_bytes() == before and not _leftovers(tmp_path)
    status, err = _interrupt(["fresh.7z", "new.txt"], tmp_path, signal.SIGTERM)
    assert status == 255 and b"terminated" in err, err
    assert not (tmp_path / "fresh.7z").exists() and not _leftovers(tmp_path)
    # completed: the old members and the new one, and the archive's permissions kept
    (tmp_path / "b.txt").write_bytes(alice[400:600])
    r = _run(["7z", "a", "old.7z", "b.txt", "-q"] + SMALL_ARGS, tmp_path)
    assert r.returncode == 0, r.stderr
    assert stat.S_IMODE(archive.stat().st_mode) == 0o640
    assert _members(archive, tmp_path / "x") == {"a.txt": alice[:400], "b.txt": alice[400:600]}
    # a file that is not an archive is not taken for one (py7zr would write over it)
    (tmp_path / "notes.7z").write_bytes(b"my notes")
    r = _run(["7z", "a", "notes.7z", "b.txt", "-q"] + SMALL_ARGS, tmp_path)
    assert r.returncode == 2 and b"not a 7z archive" in r.stderr
    assert (tmp_path / "notes.7z").read_bytes() == b"my notes" and not _leftovers(tmp_path)


# -- 4. writers racing through nacrith::

def test_racing_writers_through_nacrith_fail_loudly_instead_of_losing_data(base, english):
    fs = fsspec.filesystem("nacrith", target_protocol=base.split("://")[0], **SMALL)
    root = fs.fs._strip_protocol(base)
    fs.pipe_file(f"{root}/log.txt", b"one ")
    barrier, errors = threading.Barrier(2), []

    def append(text):
        f = fs.open(f"{root}/log.txt", "ab")
        f.write(text)
        barrier.wait()  # both appends opened and written before either closes
        try:
            f.close()
        except nc.ConflictError as exc:
            errors.append((text, exc))

    threads = [threading.Thread(target=append, args=(t,)) for t in (b"two ", b"three ")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(errors) == 1, errors  # one append published, the other refused loudly
    lost = errors[0][0]
    assert fs.cat_file(f"{root}/log.txt") == b"one " + (b"two " if lost == b"three " else b"three ")
    first, second = fs.open(f"{root}/x.txt", "xb"), fs.open(f"{root}/x.txt", "xb")
    first.write(b"first")
    second.write(b"second")
    first.close()
    with pytest.raises(FileExistsError):
        second.close()
    assert fs.cat_file(f"{root}/x.txt") == b"first"
    assert sorted(fs.fs.ls(root, detail=False)) == [f"{root}/log.txt.nc", f"{root}/x.txt.nc"]


# -- 5. data that starts like NetCDF

def test_data_that_starts_like_netcdf_reads_back_as_it_was_written(base):
    url = f"{base}/d.nc"
    with fsspec.open(url, "wb", compression="nacrith") as f:
        f.write(b"CDF\x01 looks like NetCDF")
    with fsspec.open(url, "ab", compression="nacrith") as f:
        f.write(b", and more")
    with fsspec.open(url, "rb", compression="nacrith") as f:
        assert f.read() == b"CDF\x01 looks like NetCDF, and more"
    netcdf = f"{base}/real.nc"
    with fsspec.open(netcdf, "wb") as f:
        f.write(b"CDF\x01\x00\x00\x00\x00")
    with pytest.raises(ValueError, match="NetCDF file"):
        with fsspec.open(netcdf, "ab", compression="nacrith") as f:
            f.write(b"appended")
    with fsspec.open(netcdf, "rb", compression="infer") as f:
        assert f.read() == b"CDF\x01\x00\x00\x00\x00"


# -- 6. a file object dropped unclosed

@pytest.mark.parametrize("mode", ["wb", "wt"])
def test_a_file_dropped_after_an_error_is_not_a_complete_stream(tmp_path, english, mode):
    path = tmp_path / "dropped.nc"

    def work():
        f = nc.open(path, mode, **SMALL)
        f.write(english[:300] if mode == "wb" else english[:300].decode())
        raise _Stop  # f is dropped with the frame

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(_Stop):
            work()
        gc.collect()
    assert any(issubclass(w.category, ResourceWarning) for w in caught)
    with pytest.raises(nc.TruncatedError):
        nc.decompress(path.read_bytes())


# -- 7. values that hung

def test_bad_sizes_and_lengths_fail_at_once_in_lzmas_words():
    """In a subprocess with a time limit: on the code before the fix each of these hung."""
    script = """
import nacrith_codec as nc
from nacrith_codec.container.fields import varint
for call in (lambda: nc.compress(b"x", content_size=-1),
             lambda: nc.compress(b"x", content_size="5"),
             lambda: nc.NacrithDecompressor().decompress(b"NACR", max_length=1.5),
             lambda: nc.decompress.__globals__["decoder_of_streams"]().decompress(b"", 1.5),
             lambda: varint(-1)):
    try:
        call()
    except (TypeError, ValueError) as exc:
        print(type(exc).__name__, exc)
"""
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                       timeout=120)
    assert r.stdout.splitlines() == [
        "ValueError content_size must be at least 0 (or None when unknown), not -1",
        "TypeError content_size must be an integer, not 'str'",
        "TypeError max_length must be an integer, not 'float'",
        "TypeError max_length must be an integer, not 'float'",
        "ValueError a varint field holds integers >= 0, not -1"], r.stderr


# -- 8. devices and FIFOs as outputs

def test_a_fifo_or_device_output_is_written_into_never_replaced(tmp_path, english):
    (tmp_path / "a.txt").write_bytes(english[:300])
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # so that the writer's open returns
    r = _run(["-f", "-o", "pipe", "a.txt", "-q"] + SMALL_ARGS, tmp_path)
    got = os.read(reader, 1 << 16) if stat.S_ISFIFO(fifo.stat().st_mode) else b""  # buffered
    os.close(reader)
    assert r.returncode == 0, r.stderr
    assert stat.S_ISFIFO(fifo.stat().st_mode) and nc.decompress(got) == english[:300]
    r = _run(["--rm", "-o", "pipe", "a.txt", "-q"], tmp_path)  # the data would not be kept
    assert r.returncode == 1 and b"--rm" in r.stderr and (tmp_path / "a.txt").exists()
    if os.geteuid() == 0:  # a character device of our own, as /dev/null is (root, as CI)
        null = tmp_path / "null"
        os.mknod(null, stat.S_IFCHR | 0o666, os.makedev(1, 3))
        r = _run(["-f", "-o", "null", "a.txt", "-q"] + SMALL_ARGS, tmp_path)
        assert r.returncode == 0 and stat.S_ISCHR(null.stat().st_mode), r.stderr
    assert not _leftovers(tmp_path)


# -- 9. 7z members checked to the end of their stream

def _forged(raw: bytes, replacements) -> bytes:
    """A 7z archive with a plain header whose byte strings were replaced, its header CRCs
    made valid again: what a damaged or forged archive looks like to a reader."""
    offset, size = struct.unpack_from("<QQ", raw, 12)
    start = 32 + offset
    header = raw[start:start + size]
    for old, new in replacements:
        assert header.count(old) == 1 and len(old) == len(new)
        header = header.replace(old, new)
    out = bytearray(raw[:start] + header + raw[start + size:])
    struct.pack_into("<I", out, 28, zlib.crc32(header))
    struct.pack_into("<I", out, 8, zlib.crc32(bytes(out[12:32])))
    return bytes(out)


def _number(value: int) -> bytes:
    """7z's NUMBER encoding of a value below 2**14."""
    return bytes([0x80 | value >> 8, value & 0xFF])


def _crc(data: bytes) -> bytes:
    return struct.pack("<I", zlib.crc32(data))


def test_7z_members_are_checked_to_the_end_of_their_stream(tmp_path, alice):
    a, b = alice[:300], alice[300:500]
    raw = _small_archive([("a.txt", a), ("b.txt", b)], plain_header=True)
    # the folder declares 400 bytes (b.txt: 100, with its CRC to match): its stream holds more
    short = _forged(raw, [(_number(500), _number(400)), (_crc(b), _crc(b[:100]))])
    # the folder declares 600 bytes: its stream ends sooner
    long = _forged(raw, [(_number(500), _number(600))])
    for forged, why in ((short, "holds more than the 400 bytes"), (long, "ends after 500")):
        path = tmp_path / "forged.7z"
        path.write_bytes(forged)
        with py7zr.SevenZipFile(path) as z, pytest.raises(nc.CorruptError, match=why):
            z.extractall(tmp_path / "py7zr")
        r = _run(["7z", "x", "forged.7z", "-o", "out", "-q"], tmp_path)
        assert r.returncode == 2 and why.encode() in r.stderr, r.stderr
        assert not any((tmp_path / "out").iterdir())
    path.write_bytes(short)
    r = _run(["7z", "t", "forged.7z", "-q"], tmp_path)
    assert r.returncode == 2 and b"CorruptError" in r.stderr
    assert _members(io.BytesIO(raw), tmp_path / "x") == {"a.txt": a, "b.txt": b}


# -- 10. the lower ones

def test_names_up_to_the_file_systems_limit_can_be_written(tmp_path, english):
    for name in ("n" * (NAME_MAX - 3), "é" * 120):  # 252 bytes + ".nc"; 240 of UTF-8
        src = tmp_path / name
        src.write_bytes(english[:60])
        assert cli.main([str(src), "-q"] + SMALL_ARGS) == 0
        assert nc.decompress((tmp_path / f"{name}.nc").read_bytes()) == english[:60]
        hidden = temporary_name(str(tmp_path / f"{name}.nc"), os.sep).rpartition(os.sep)[2]
        assert len(hidden.encode()) <= NAME_MAX and hidden.startswith(".nacrith-")
    with Output(str(tmp_path / ("z" * NAME_MAX))) as out:
        out.write(b"fits")
    assert (tmp_path / ("z" * NAME_MAX)).read_bytes() == b"fits"


def test_seeking_in_a_damaged_file_gives_its_nacrith_error(base, english, monkeypatch):
    packed = nc.compress(english[:300], **SMALL)
    fs = fsspec.filesystem("nacrith", target_protocol=base.split("://")[0], **SMALL)
    root = fs.fs._strip_protocol(base)
    _, head, [(_, record)], _ = stream_parts(packed)
    fs.fs.pipe_file(f"{root}/cut.txt.nc", packed[:len(head) + len(record) // 2])  # in its block
    with fs.open(f"{root}/cut.txt", "rb") as f, pytest.raises(nc.TruncatedError):
        f.seek(100)
    with fs.open(f"{root}/cut.txt", "rb") as f, pytest.raises(nc.TruncatedError):
        f.seek(-5, io.SEEK_END)
    with pytest.raises(nc.TruncatedError):
        fs.cat_file(f"{root}/cut.txt", 10, 30)
    with pytest.raises(nc.TruncatedError):
        fs.read_block(f"{root}/cut.txt", 0, 20)
    # a whole file read without its index seeks by decoding, forward, back and from the end
    import nacrith_codec.file
    monkeypatch.setattr(nacrith_codec.file, "_seekable_index", lambda fp: None)
    with nc.open(io.BytesIO(packed + nc.compress(b" The end.", **SMALL))) as f:
        whole = english[:300] + b" The end."
        assert f.seekable() and f.size == len(whole)
        f.seek(250)
        assert f.read(20) == whole[250:270]
        f.seek(10)
        assert f.read(5) == whole[10:15]
        f.seek(-4, io.SEEK_END)
        assert f.read() == b"end."


def test_names_and_messages_are_printed_escaped(tmp_path):
    name = "x\x1b[2J\nnacrith: forged.txt: OK"
    r = _run([name], tmp_path)
    assert r.returncode == 1
    line, = r.stderr.decode().splitlines()  # one line, nothing a terminal would act on
    assert "\\x1b[2J\\n" in line and "\x1b" not in line


def test_arrays_are_bytes_like_objects_as_lzma_takes_them(tmp_path):
    array = np.arange(300, dtype=np.uint16)
    packed = nc.compress(array, **SMALL)
    assert nc.decompress(np.frombuffer(packed, np.uint8)) == array.tobytes()
    with nc.open(tmp_path / "a.nc", "wb", **SMALL) as f:
        assert f.write(array) == array.nbytes
    assert nc.decompress((tmp_path / "a.nc").read_bytes()) == array.tobytes()
    with pytest.raises(BufferError, match="C-contiguous"):
        nc.compress(array[::2], **SMALL)


def test_a_reader_that_leaves_ends_info_quietly(tmp_path, english):
    (tmp_path / "a.nc").write_bytes(nc.compress(english[:100], **SMALL))
    p = subprocess.Popen(NACRITH + ["info"] + ["a.nc"] * 3000, cwd=tmp_path,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert p.stdout.readline().startswith(b"a.nc")
    p.stdout.close()  # as `| head -1` does
    err = p.stderr.read()
    assert p.wait(timeout=120) == 128 + signal.SIGPIPE and err == b"", err
