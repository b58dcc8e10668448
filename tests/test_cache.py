"""What nacrith keeps on disk: said once when made, listed and removed by `nacrith cache`,
moved by NACRITH_CACHE_DIR (a real model file, real folders, the real command)."""

import json
import os
import subprocess
import sys
import warnings

import pytest

import nacrith_codec as nc
from nacrith_codec import cache
from nacrith_codec.engines.exact import weights
from conftest import write_tiny_gguf


def nacrith_cache(*args, env):
    return subprocess.run([sys.executable, "-m", "nacrith_codec.cli", "cache", *args],
                          capture_output=True, text=True, timeout=300, env=env)


@pytest.fixture
def folder(tmp_path, monkeypatch):
    monkeypatch.setenv("NACRITH_CACHE_DIR", str(tmp_path / "kept"))
    return tmp_path / "kept"


def test_the_first_use_says_where_how_large_and_how_to_remove(folder, tmp_path):
    model = write_tiny_gguf(tmp_path / "tiny.gguf")
    with pytest.warns(nc.CacheNotice) as said:
        weights.load(model)
    made, = (folder / "exact").iterdir()
    text = str(said[0].message)
    for part in (str(made), " MB", "nacrith cache --clear", "NACRITH_CACHE_DIR"):
        assert part in text, part
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # said once: a later load is silent
        weights.load(model)


def test_nacrith_cache_lists_prunes_and_clears(folder, tmp_path):
    env = {**os.environ, "NACRITH_CACHE_DIR": str(folder)}
    with pytest.warns(nc.CacheNotice):
        weights.load(write_tiny_gguf(tmp_path / "tiny.gguf"))
    current, = (folder / "exact").iterdir()
    old = folder / "exact" / current.name.replace(weights.LAYOUT, "exact-1")
    old.mkdir()
    (old / "w.npy").write_bytes(bytes(5000))
    (folder / "someone-elses.txt").write_text("kept")
    listing = json.loads(nacrith_cache("--json", env=env).stdout)
    assert listing["root"] == str(folder)
    found = {e["path"]: e for e in listing["entries"]}
    assert found[str(old)]["used"] is False and found[str(old)]["bytes"] == 5000
    assert found[str(current)]["used"] is True and found[str(current)]["bytes"] == \
        cache.size_of(current)
    r = nacrith_cache(env=env)
    assert r.returncode == 0 and "nacrith cache --prune" in r.stdout and str(folder) in r.stdout
    assert nacrith_cache("--prune", env=env).returncode == 0
    assert not old.exists() and current.exists()
    r = nacrith_cache("--clear", env=env)
    assert r.returncode == 0 and "removed" in r.stdout
    assert not current.exists() and (folder / "someone-elses.txt").read_text() == "kept"
    assert nacrith_cache("--clear", "--prune", env=env).returncode == 2


def test_every_file_nacrith_keeps_is_below_the_one_folder(folder, tmp_path):
    from nacrith_codec.engines import model_file
    model = write_tiny_gguf(tmp_path / "tiny.gguf")
    model_file.fingerprint(model)
    with pytest.warns(nc.CacheNotice):
        weights.load(model)
    assert (folder / "fingerprints.json").is_file() and list((folder / "exact").iterdir())
    assert {e.path.parent for e in cache.entries()} == {folder, folder / "exact"}
