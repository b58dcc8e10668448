"""fsspec: compression="nacrith", inference on .nc, and the nacrith:: filesystem."""

import io

import fsspec
import pytest

import nacrith_codec as nc
import nacrith_codec.plugins.fsspec_compression  # noqa: F401  registers the compression
from conftest import SMALL

NETCDF_CLASSIC = b"CDF\x01\x00\x00\x00\x00" + bytes(range(40))
NETCDF4 = b"\x89HDF\r\n\x1a\n" + bytes(range(40))


@pytest.fixture(autouse=True)
def small_options(monkeypatch):
    # fsspec's compression callback takes no options: they come from the environment
    monkeypatch.setenv("NACRITH_OPTIONS", ",".join(f"{k}={v}" for k, v in SMALL.items()))


def test_options_from_the_environment_reach_the_stream(monkeypatch, tmp_path):
    from nacrith_codec import container
    monkeypatch.setenv("NACRITH_OPTIONS", "window=40,slide=10,streams=1")
    with fsspec.open(f"file://{tmp_path}/o.nc", "wb", compression="nacrith") as f:
        f.write(b"options")
    header, _ = container.parse_header((tmp_path / "o.nc").read_bytes())
    assert (header.config.window, header.config.slide, header.config.streams) == (40, 10, 1)
    for wrong, why in [("windows=40", "NACRITH_OPTIONS"), ("window=\u0661\u0662\u0663", "name=integer"),
                       ("window=\u00b2", "name=integer"), ("window=40,window=48", "given twice"),
                       ("window", "NAME=VALUE")]:
        monkeypatch.setenv("NACRITH_OPTIONS", wrong)  # Arabic-Indic 123, a superscript 2
        with pytest.raises(ValueError, match=why):
            fsspec.open(f"file://{tmp_path}/p.nc", "wb", compression="nacrith").open()


def test_threads_from_the_environment_reach_the_reader_too(monkeypatch, tmp_path):
    url = f"file://{tmp_path}/t.nc"
    with fsspec.open(url, "wb", compression="nacrith") as f:
        f.write(b"threads")
    monkeypatch.setenv("NACRITH_OPTIONS", "threads=100000")  # beyond llama.cpp's bound
    with pytest.raises(ValueError, match="threads must be between"):
        with fsspec.open(url, "rb", compression="nacrith") as f:
            f.read()
    monkeypatch.setenv("NACRITH_OPTIONS", "threads=1,window=40")  # only threads applies
    with fsspec.open(url, "rb", compression="nacrith") as f:
        assert f.read() == b"threads"


def test_binary_and_text_round_trip(base, english):
    url = f"{base}/x.txt.nc"
    with fsspec.open(url, "wb", compression="nacrith") as f:
        f.write(english[:100])
        f.flush()  # a flush must not end the stream
        f.write(english[100:160])
    raw = fsspec.open(url, "rb").open().read()
    assert raw.startswith(b"NACR") and nc.decompress(raw) == english[:160]
    with fsspec.open(url, "rb", compression="nacrith") as f:
        assert f.read() == english[:160]
    with fsspec.open(url, "rt", compression="infer", encoding="utf-8", newline="") as f:
        assert f.read() == english[:160].decode()
    with fsspec.open(f"{base}/t.nc", "wt", compression="infer", encoding="utf-8") as f:
        f.write("héllo")
    with fsspec.open(f"{base}/t.nc", "rt", compression="infer", encoding="utf-8") as f:
        assert f.read() == "héllo"


@pytest.mark.parametrize("netcdf", [NETCDF_CLASSIC, NETCDF4], ids=["classic", "netcdf4"])
def test_netcdf_files_are_left_intact_by_infer(base, netcdf):
    url = f"{base}/data.nc"
    with fsspec.open(url, "wb") as f:
        f.write(netcdf)
    with fsspec.open(url, "rb", compression="infer") as f:
        assert f.read() == netcdf
    with fsspec.open(url, "rb", compression="nacrith") as f:  # one rule, by name or suffix
        assert f.read() == netcdf
    with fsspec.open(f"{base}/written.nc", "wb", compression="infer") as f:
        f.write(netcdf)  # what is written is compressed, whatever it starts with
    assert fsspec.open(f"{base}/written.nc", "rb").open().read().startswith(b"NACR")
    with fsspec.open(f"{base}/written.nc", "rb", compression="infer") as f:
        assert f.read() == netcdf
    with fsspec.open(f"{base}/other.nc", "wb") as f:
        f.write(b"neither nacrith nor NetCDF")
    with pytest.raises(nc.FormatError, match="uncompressed text"):  # anything else: loud
        with fsspec.open(f"{base}/other.nc", "rb", compression="infer") as f:
            f.read()


def test_non_seekable_reader_is_decoded_sequentially(english):
    packed = nc.compress(english[:90], **SMALL)

    class Pipe(io.RawIOBase):
        def __init__(self):
            self.data = io.BytesIO(packed)

        def readable(self):
            return True

        def readinto(self, b):
            return self.data.readinto(b)

    from nacrith_codec.plugins.fsspec_compression import open_nacrith
    assert open_nacrith(io.BufferedReader(Pipe()), "rb").read() == english[:90]


def test_nacrith_filesystem_write_list_read_copy(base, english, tmp_path):
    opts = {"nacrith": dict(SMALL)}
    url = f"nacrith::{base}/logs/a.txt"
    with fsspec.open(url, "wb", **opts) as f:
        f.write(english[:200])
    fs, path = fsspec.core.url_to_fs(url, **opts)
    folder = path.rsplit("/", 1)[0]
    assert fs.info(path)["size"] == 200
    listing = fs.ls(folder, detail=True)
    assert [(e["name"].rsplit("/", 1)[1], e["size"]) for e in listing] == [("a.txt", 200)]
    assert fs.cat_file(path, 10, 30) == english[10:30]
    fs.cp_file(path, folder + "/b.txt")
    assert fs.cat_file(folder + "/b.txt") == english[:200]
    # the target holds real nacrith streams under the suffix
    target = fsspec.filesystem(base.split("://")[0])
    stored = target.cat_file(target._strip_protocol(base) + "/logs/b.txt.nc")
    assert nc.decompress(stored) == english[:200]
    fs.get_file(path, str(tmp_path / "local.txt"))
    assert (tmp_path / "local.txt").read_bytes() == english[:200]
    fs.rm_file(folder + "/b.txt")
    assert [e["name"].rsplit("/", 1)[1] for e in fs.ls(folder, detail=True)] == ["a.txt"]


def test_nacrith_url_works_through_the_entry_point_without_import():
    import subprocess, sys
    code = ("import fsspec, sys\n"
            "with fsspec.open('nacrith::memory://e/x.txt', 'wb', nacrith={'window': 48, 'slide': 16}) as f:\n"
            "    f.write(b'entry point')\n"
            "print(fsspec.open('nacrith::memory://e/x.txt', 'rb').open().read().decode(),\n"
            "      'nacrith_codec' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "entry point True"


def test_pipe_put_and_a_writer_that_cannot_seek(base, english, tmp_path):
    fs, root = fsspec.core.url_to_fs(f"nacrith::{base}/p", nacrith=dict(SMALL))
    fs.makedirs(root, exist_ok=True)  # local disks, like the target fs, do not create parents
    fs.pipe_file(root + "/piped.txt", english[:70])
    assert fs.cat_file(root + "/piped.txt") == english[:70]
    local = tmp_path / "up.txt"
    local.write_bytes(english[70:140])
    fs.put_file(str(local), root + "/up.txt")
    assert fs.cat_file(root + "/up.txt") == english[70:140]

    class ObjectStoreWriter:  # write-only, like an S3 multipart upload
        def __init__(self):
            self.parts = []

        def write(self, data):
            self.parts.append(bytes(data))
            return len(data)

        def seekable(self):
            return False

        def tell(self):
            raise OSError("not seekable")

    w = ObjectStoreWriter()
    with nc.open(w, "wb", **SMALL) as f:
        f.write(english[:50])
    assert nc.decompress(b"".join(w.parts)) == english[:50]


def test_nacrith_filesystem_modes_append_create_exclusively_or_refuse(base, english):
    opts = {"nacrith": dict(SMALL)}
    url = f"nacrith::{base}/m/x.txt"
    fs, path = fsspec.core.url_to_fs(url, **opts)
    fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    with fsspec.open(url, "w", **opts) as f:
        f.write("line one\n")
    with fsspec.open(url, "a", **opts) as f:  # appending adds a stream
        f.write("line two\n")
    with fsspec.open(url, "ab", **opts) as f:
        f.write(b"line three\n")
    expected = b"line one\nline two\nline three\n"
    with fsspec.open(url, "rb", **opts) as f:
        assert f.read() == expected
    assert fs.info(path)["size"] == len(expected)  # the index spans the three streams
    assert fs.cat_file(path, -6) == expected[-6:]
    assert fs.read_block(path, 5, 8) == expected[5:13]
    for mode in ("x", "xb"):
        with pytest.raises(FileExistsError):
            fs.open(path, mode)
    assert fs.cat_file(path) == expected
    with fs.open(path.replace("x.txt", "new.txt"), "xb") as f:
        f.write(b"fresh")
    assert fs.cat_file(path.replace("x.txt", "new.txt")) == b"fresh"
    for mode in ("r+b", "w+b", "a+b"):
        with pytest.raises(ValueError, match="modes r, w, x, a"):
            fs.open(path, mode)
    assert fs.cat_file(path) == expected


def test_compression_is_there_after_import_nacrith_codec_in_a_fresh_process(tmp_path):
    import subprocess, sys
    code = ("import fsspec, nacrith_codec\n"
            f"url = 'file://{tmp_path}/x.txt.nc'\n"
            "with fsspec.open(url, 'wb', compression='nacrith') as f:\n"
            "    f.write(b'registered')\n"
            "print(fsspec.open(url, 'rb', compression='infer').open().read().decode(),\n"
            "      sorted(c for c in fsspec.available_compressions() if c and 'nacrith' in c))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**__import__("os").environ, "NACRITH_OPTIONS": "window=48,slide=16"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "registered ['nacrith']"


def test_a_failed_write_through_nacrith_leaves_nothing_in_memory(english):
    """memory:// publishes a file as soon as it is opened; the codec's one output rule
    (nacrith_codec.output.Output) writes a hidden temporary file and renames it, so a
    write that fails leaves no object, not a stream without its end."""
    memory = fsspec.filesystem("memory")
    fs = fsspec.filesystem("nacrith", target_protocol="memory", **SMALL)
    with pytest.raises(RuntimeError, match="the writer failed"):
        with fs.open("/failing/x.txt", "wb") as f:
            f.write(english[:40])
            raise RuntimeError("the writer failed")
    assert not memory.exists("/failing") or memory.ls("/failing", detail=False) == []
    with fsspec.open("nacrith::memory://failing/x.txt", "wb", **SMALL) as f:
        f.write(english[:40])
    assert memory.ls("/failing", detail=False) == ["/failing/x.txt.nc"]
    assert nc.decompress(memory.cat("/failing/x.txt.nc")) == english[:40]
