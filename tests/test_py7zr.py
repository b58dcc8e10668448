"""Real 7z archives written and read by py7zr with the nacrith filter."""

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
