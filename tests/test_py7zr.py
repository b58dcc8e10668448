"""Real 7z archives written and read by py7zr with the nacrith filter."""

import os
import random
import shutil
import subprocess
import sys

import py7zr
import pytest

from nacrith_codec.plugins.sevenzip import FILTER_NACRITH, METHOD_ID
from conftest import SMALL

NACRITH = {"id": FILTER_NACRITH, **SMALL}


@pytest.fixture
def tree(tmp_path, english):
    root = tmp_path / "src"
    (root / "docs" / "deep").mkdir(parents=True)
    (root / "docs" / "a.txt").write_bytes(english[:150])
    (root / "docs" / "deep" / "b.txt").write_bytes(english[150:260])
    (root / "empty.txt").write_bytes(b"")
    (root / "noise.bin").write_bytes(random.Random(5).randbytes(300))
    return root


def _files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def test_archive_of_files_and_directories(tmp_path, tree):
    archive = tmp_path / "a.7z"
    with py7zr.SevenZipFile(archive, "w", filters=[NACRITH]) as z:
        z.writeall(tree, arcname="src")
    with py7zr.SevenZipFile(archive) as z:
        assert z.header.main_streams.unpackinfo.folders[0].coders[0]["method"] == METHOD_ID
        assert z.testzip() is None
    with py7zr.SevenZipFile(archive) as z:
        assert z.test() is not False  # None: py7zr writes no packed-stream CRCs to test
    with py7zr.SevenZipFile(archive) as z:
        z.extractall(tmp_path / "out")
    assert _files(tmp_path / "out" / "src") == _files(tree)
    with py7zr.SevenZipFile(archive) as z:
        z.extract(tmp_path / "one", targets=["src/docs/a.txt"])
    assert (tmp_path / "one" / "src" / "docs" / "a.txt").read_bytes() == (tree / "docs" / "a.txt").read_bytes()


def test_encrypted_archive(tmp_path, tree):
    from py7zr import FILTER_CRYPTO_AES256_SHA256
    archive = tmp_path / "secret.7z"
    filters = [NACRITH, {"id": FILTER_CRYPTO_AES256_SHA256}]
    with py7zr.SevenZipFile(archive, "w", filters=filters, password="hunter2") as z:
        z.writeall(tree / "docs", arcname="docs")
    with py7zr.SevenZipFile(archive, password="hunter2") as z:
        z.extractall(tmp_path / "out")
    assert _files(tmp_path / "out" / "docs") == _files(tree / "docs")


def test_bcj_chain(tmp_path, english):
    from py7zr import FILTER_X86
    archive = tmp_path / "bcj.7z"
    with py7zr.SevenZipFile(archive, "w", filters=[{"id": FILTER_X86}, NACRITH]) as z:
        z.writestr(english[:120], "x.txt")
    with py7zr.SevenZipFile(archive) as z:
        z.extractall(tmp_path / "out")
    assert (tmp_path / "out" / "x.txt").read_bytes() == english[:120]


def test_input_spanning_several_1mib_chunks(tmp_path):
    # 2.5 MiB, mostly incompressible so that stored blocks keep it fast; a text head
    # is still coded by the model. py7zr feeds and reads it in 1 MiB chunks.
    rng = random.Random(9)
    data = b"The quick brown fox jumps over the lazy dog. " * 3 + rng.randbytes(5 << 19)
    archive = tmp_path / "big.7z"
    with py7zr.SevenZipFile(archive, "w", filters=[{**NACRITH, "block_size": 1 << 18}]) as z:
        z.writestr(data, "big.bin")
    with py7zr.SevenZipFile(archive) as z:
        z.extractall(tmp_path / "out")
    assert (tmp_path / "out" / "big.bin").read_bytes() == data


def test_reader_without_the_plugin_gets_py7zrs_error(tmp_path, english):
    archive = tmp_path / "a.7z"
    with py7zr.SevenZipFile(archive, "w", filters=[NACRITH]) as z:
        z.writestr(english[:50], "a.txt")
    code = ("import py7zr, sys\n"
            "try:\n"
            f"    py7zr.SevenZipFile({str(archive)!r}).extractall({str(tmp_path / 'x')!r})\n"
            "except py7zr.exceptions.UnsupportedCompressionMethodError as e:\n"
            "    print('unsupported'); sys.exit(0)\n"
            "sys.exit(1)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0 and "unsupported" in r.stdout, r.stderr
    # py7zr creates the member's file before it fails: never with content
    out = tmp_path / "x" / "a.txt"
    assert not out.exists() or out.stat().st_size == 0


def test_archive_written_with_another_model_names_it(tmp_path, english, other_model):
    import nacrith_codec as nc
    archive = tmp_path / "a.7z"
    with py7zr.SevenZipFile(archive, "w", filters=[{**NACRITH, "model": str(other_model)}]) as z:
        z.writestr(english[:60], "a.txt")
    with py7zr.SevenZipFile(archive) as z, pytest.raises(nc.ModelMismatchError, match="q4_0"):
        z.extractall(tmp_path / "out")


@pytest.mark.skipif(shutil.which("7zz") is None, reason="7-Zip (Debian package 7zip) is not installed")
def test_7zip_lists_the_archive(tmp_path, english):
    archive = tmp_path / "a.7z"
    with py7zr.SevenZipFile(archive, "w", filters=[NACRITH]) as z:
        z.writestr(english[:80], "hello.txt")
    listing = subprocess.run(["7zz", "l", "-slt", str(archive)], capture_output=True, text=True)
    assert listing.returncode == 0 and "hello.txt" in listing.stdout
    extract = subprocess.run(["7zz", "t", str(archive)], capture_output=True, text=True)
    assert extract.returncode != 0 and "Unsupported" in extract.stdout + extract.stderr


def test_coder_properties_name_the_format_version():
    from nacrith_codec import container
    from nacrith_codec import FormatError
    from nacrith_codec.plugins.sevenzip import PROPERTIES, SevenZipDecompressor

    assert PROPERTIES == bytes([container.VERSION])
    for version in container.READABLE:  # archives written by earlier releases still open
        SevenZipDecompressor(bytes([version]))
    with pytest.raises(FormatError, match="cannot read"):
        SevenZipDecompressor(b"\x09")


def test_an_archive_for_an_older_release_names_its_version(tmp_path, english):
    import io
    archive = io.BytesIO()
    spec = {"id": FILTER_NACRITH, "format_version": 7, **SMALL}
    with py7zr.SevenZipFile(archive, "w", filters=[spec]) as z:
        z.writestr(english[:90], "a.txt")
    archive.seek(0)
    with py7zr.SevenZipFile(archive) as z:
        assert z.header.main_streams.unpackinfo.folders[0].coders[0]["properties"] == b"\x07"
        z.extractall(tmp_path)
    assert (tmp_path / "a.txt").read_bytes() == english[:90]


def test_wrong_password_says_so(tmp_path, tree):
    from py7zr import FILTER_CRYPTO_AES256_SHA256
    import nacrith_codec as nc
    archive = tmp_path / "secret.7z"
    with py7zr.SevenZipFile(archive, "w", filters=[NACRITH, {"id": FILTER_CRYPTO_AES256_SHA256}],
                            password="right") as z:
        z.write(tree / "docs" / "a.txt", "a.txt")
    with pytest.raises(nc.FormatError, match="password is probably wrong"):
        with py7zr.SevenZipFile(archive, password="wrong") as z:
            z.extractall(tmp_path / "out")


def test_a_bad_filter_option_is_named_and_leaves_no_archive(tmp_path, tree):
    archive = tmp_path / "bad.7z"
    for bad in ({"level": 9}, {"streams": 0}):
        with pytest.raises(ValueError, match="level|streams") as info:
            with py7zr.SevenZipFile(archive, "w", filters=[{"id": FILTER_NACRITH, **bad}]) as z:
                z.write(tree / "docs" / "a.txt", "a.txt")
        assert "window" in str(info.value) or "streams must be" in str(info.value)
        assert not archive.exists()


def _7z(*args, cwd=None, stdin=None):
    return subprocess.run([sys.executable, "-m", "nacrith_codec.cli", "7z", *args], cwd=cwd,
                          capture_output=True, timeout=600, input=stdin)


def test_nacrith_7z_command_adds_lists_tests_and_extracts(tmp_path, tree):
    archive = str(tmp_path / "cli.7z")
    small = ["--streams", "2", "--window", "48", "--slide", "16"]
    r = _7z("a", archive, str(tree / "docs"), str(tree / "noise.bin"), *small)
    assert r.returncode == 0, r.stderr
    # docs, docs/a.txt, docs/deep, docs/deep/b.txt and noise.bin: 7-Zip counts entries
    assert b"5 item(s) added" in r.stderr, r.stderr
    with py7zr.SevenZipFile(archive) as z:  # a real archive with the nacrith method
        assert z.header.main_streams.unpackinfo.folders[0].coders[0]["method"] == METHOD_ID
    listing = _7z("l", archive)
    assert listing.returncode == 0 and b"docs/deep/b.txt" in listing.stdout
    assert b"5 item(s)" in listing.stderr
    assert _7z("t", archive, "--threads", "1").returncode == 0
    out = tmp_path / "out"
    assert _7z("x", archive, "-o", str(out)).returncode == 0
    assert _files(out / "docs") == _files(tree / "docs")
    assert (out / "noise.bin").read_bytes() == (tree / "noise.bin").read_bytes()
    r = _7z("x", archive, "-o", str(out))  # 7-Zip's fatal error: existing files kept
    assert r.returncode == 2 and b"-y" in r.stderr
    assert _7z("x", archive, "-o", str(out), "-y").returncode == 0
    assert _7z("q", archive).returncode == 7  # command line error
    assert _7z("x", str(tmp_path / "missing.7z")).returncode == 2
    damaged = bytearray(open(archive, "rb").read())
    damaged[40] ^= 0xFF
    (tmp_path / "damaged.7z").write_bytes(bytes(damaged))
    r = _7z("x", str(tmp_path / "damaged.7z"), "-o", str(tmp_path / "d"))
    assert r.returncode == 2 and b"Traceback" not in r.stderr
    assert not [p for p in (tmp_path / "d").rglob("*") if p.is_file()]  # nothing partial


def test_nacrith_7z_x_checks_and_cleans_up_exactly_the_paths_py7zr_writes(tmp_path):
    """An absolute member name is written inside the output folder (py7zr drops the
    leading /), a repeated name as NAME_0: the overwrite check and the cleanup after a
    failed extraction must look at those paths, never at the folder-less join of the name
    (which overwrote files inside without -y, refused because of files outside, and let a
    failure unlink the outside path), and a dangling link of a member's name is a file."""
    from nacrith_codec.plugins.sevenzip_cli import _targets

    outside = tmp_path / "outside.txt"
    rng = random.Random(9)
    members = [(str(outside), rng.randbytes(200)), ("dup.txt", rng.randbytes(200)),
               ("dup.txt", rng.randbytes(200))]  # random bytes: stored, no model run
    archive = tmp_path / "names.7z"
    with py7zr.SevenZipFile(archive, "w", filters=[NACRITH]) as z:
        for name, data in members:
            z._writestr(data, name)  # writestr refuses an absolute name; archives may hold one
    written = tmp_path / "by-py7zr"
    with py7zr.SevenZipFile(archive) as z:
        targets = [path for _, path in _targets(z.list(), str(written))]
        z.extractall(written)
    assert sorted(targets) == sorted(str(p) for p in written.rglob("*") if p.is_file())
    inside = written / str(outside).lstrip("/")
    assert inside.read_bytes() == members[0][1] and (written / "dup.txt_0").is_file()

    out = tmp_path / "out"
    outside.write_bytes(b"precious")  # exists outside: no reason to refuse
    assert _7z("x", str(archive), "-o", str(out)).returncode == 0
    assert outside.read_bytes() == b"precious"
    assert (out / str(outside).lstrip("/")).read_bytes() == members[0][1]
    outside.unlink()
    (out / str(outside).lstrip("/")).write_bytes(b"mine")
    r = _7z("x", str(archive), "-o", str(out))  # exists inside: refused without -y
    assert r.returncode == 2 and b"-y" in r.stderr, r.stderr
    assert (out / str(outside).lstrip("/")).read_bytes() == b"mine" and not outside.exists()

    renamed = tmp_path / "renamed"
    renamed.mkdir()
    (renamed / "dup.txt_0").write_bytes(b"mine too")  # where py7zr puts the second dup.txt
    r = _7z("x", str(archive), "dup.txt", "-o", str(renamed))
    assert r.returncode == 2 and b"dup.txt_0" in r.stderr, r.stderr
    assert (renamed / "dup.txt_0").read_bytes() == b"mine too"

    damaged = bytearray(archive.read_bytes())
    damaged[40] ^= 0xFF  # fails while extracting (a corrupt nacrith stream)
    (tmp_path / "damaged.7z").write_bytes(bytes(damaged))
    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / "dup.txt").symlink_to(linked / "nowhere")  # dangling, inside the folder
    r = _7z("x", str(tmp_path / "damaged.7z"), "-o", str(linked))
    assert r.returncode == 2 and b"-y" in r.stderr, r.stderr
    assert (linked / "dup.txt").is_symlink()


def test_nacrith_7z_names_what_is_missing_and_checks_threads(tmp_path):
    r = _7z("l")
    assert r.returncode == 7 and r.stderr.decode().splitlines()[-1] == (
        "nacrith 7z: error: l needs ARCHIVE.7z")
    archive = str(tmp_path / "none.7z")
    r = _7z("a", archive, "--threads", "-1", str(tmp_path))
    assert r.returncode == 7 and not os.path.exists(archive)
    r = subprocess.run([sys.executable, "-m", "nacrith_codec.cli", "7z", "a", archive,
                        str(tmp_path)], capture_output=True, timeout=600,
                       env={**os.environ, "NACRITH_THREADS": "many"})
    assert r.returncode == 7 and b"NACRITH_THREADS='many'" in r.stderr
    assert not os.path.exists(archive)
