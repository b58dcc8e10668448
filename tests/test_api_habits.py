"""The Python API's habits are lzma's and bz2's: bytes-like input, named options,
concatenated streams, no private standard-library modules."""

import ast
import pathlib

import pytest

import nacrith_codec as nc
from conftest import SMALL

PACKAGE = pathlib.Path(nc.__file__).parent


def test_text_is_refused_as_lzma_refuses_it():
    for call in (lambda: nc.compress("text"), lambda: nc.decompress("text"),
                 lambda: nc.NacrithCompressor().compress("text"),
                 lambda: nc.NacrithDecompressor().decompress("text")):
        with pytest.raises(TypeError, match="a bytes-like object is required, not 'str'"):
            call()


def test_unknown_options_name_the_valid_ones(tmp_path):
    with pytest.raises(TypeError, match=r"unknown option 'level'.*streams.*window"):
        nc.compress(b"x", level=9)
    with pytest.raises(TypeError, match="unknown option 'preset'"):
        nc.decompress(b"x", preset=9)
    target = tmp_path / "kept.nc"
    target.write_bytes(b"precious")
    with pytest.raises(TypeError, match="level"):  # refused before the file is truncated
        nc.open(target, "wb", level=9)
    assert target.read_bytes() == b"precious"


def test_any_bytes_like_input(english):
    import array
    data = array.array("I", english[:80])
    packed = nc.compress(data, **SMALL)
    assert nc.decompress(memoryview(packed)) == data.tobytes()


def test_appending_adds_a_stream_that_every_reader_reads(tmp_path, english):
    path = tmp_path / "log.nc"
    with nc.open(path, "wb", **SMALL) as f:
        f.write(english[:50])
    with nc.open(path, "ab", **SMALL) as f:
        f.write(english[50:90])
    data = path.read_bytes()
    assert nc.decompress(data) == english[:90]
    with nc.open(path) as f:  # seekable: indexed across both streams
        assert f.size == 90
        f.seek(45)
        assert f.read(10) == english[45:55]
    with pytest.raises(FileExistsError):
        nc.open(path, "xb")


def test_no_private_standard_library_module_is_imported():
    """``_compression`` moved in Python 3.14; the package declares 3.10+."""
    for source in sorted(PACKAGE.rglob("*.py")) + sorted((PACKAGE.parent / "plugins").rglob("*.py")):
        tree = ast.parse(source.read_text())
        names = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                 for alias in node.names}
        names |= {node.module for node in ast.walk(tree)
                  if isinstance(node, ast.ImportFrom) and node.module and not node.level}
        assert "_compression" not in names, source


def test_threads_come_from_the_environment_when_not_given(monkeypatch):
    from nacrith_codec.engines.llamacpp import chosen_threads
    monkeypatch.setenv("NACRITH_THREADS", "3")
    assert chosen_threads() == 3 and chosen_threads(1) == 1
    monkeypatch.setenv("NACRITH_THREADS", "")
    assert chosen_threads() is None
    for wrong in ("-2", "two", "100000"):
        monkeypatch.setenv("NACRITH_THREADS", wrong)
        with pytest.raises(ValueError, match=f"NACRITH_THREADS={wrong!r}"):
            nc.NacrithCompressor()
        with pytest.raises(ValueError, match="NACRITH_THREADS"):
            nc.NacrithDecompressor()
