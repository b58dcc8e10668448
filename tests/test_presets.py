"""Levels 1..9: ``-N`` on the command line, ``preset=N`` in the API, the 7z filter and
fsspec; options given beside a level win; a stream's level is read back from the
settings it records."""

import subprocess
import sys

import fsspec
import py7zr
import pytest

import nacrith_codec as nc
from nacrith_codec import container, presets
from nacrith_codec.container.inspect import stream_info
from nacrith_codec.plugins.sevenzip import FILTER_NACRITH
from conftest import GEMMA, needs_gemma


def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "nacrith_codec.cli", *args],
                          capture_output=True, cwd=cwd, timeout=600)


def test_a_preset_sets_its_fields_and_the_stream_says_its_level(english):
    packed = nc.compress(english[:120], preset=1)
    config = container.parse_header(packed)[0].config
    assert (config.streams, config.window, config.slide, config.cache_size) == (16, 256, 64, 0)
    assert stream_info(packed)["level"] == 1
    assert nc.decompress(packed) == english[:120]
    assert stream_info(nc.compress(english[:40], streams=2))["level"] is None
    assert stream_info(nc.compress(english[:40]))["level"] == presets.DEFAULT_LEVEL


def test_options_beside_a_preset_win_and_bad_presets_are_refused(english):
    packed = nc.compress(english[:60], preset=1, window=512, slide=128)
    config = container.parse_header(packed)[0].config
    assert (config.streams, config.window, config.cache_size) == (16, 512, 0)
    assert stream_info(packed)["level"] == 2  # 16 streams, 512 tokens, no cache: level 2
    for wrong in (0, 10, True, "9", 2.0):
        with pytest.raises(ValueError, match="preset must be an integer 1..9"):
            nc.compress(b"x", preset=wrong)
    with pytest.raises(ValueError, match="preset or config"):
        nc.compress(b"x", preset=3, config=nc.CodecConfig())


def test_every_level_is_a_valid_configuration_named_by_its_settings():
    for n, level in presets.LEVELS.items():
        config = nc.CodecConfig(**level.options)
        assert presets.level_of(config, level.model or "smollm2-135m") == n


def test_the_command_line_takes_levels_as_gzip_does(tmp_path, english):
    (tmp_path / "a.txt").write_bytes(english[:100])
    r = _cli("-2", "a.txt", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    info = _cli("info", "a.txt.nc", cwd=tmp_path)
    assert b"level            2" in info.stdout
    assert _cli("-d", "-c", "a.txt.nc", cwd=tmp_path).stdout == english[:100]
    r = _cli("-1", "-9", "a.txt", cwd=tmp_path)
    assert r.returncode == 2 and b"not allowed with argument" in r.stderr


def test_a_7z_filter_and_fsspec_take_a_preset(tmp_path, english, monkeypatch):
    archive = tmp_path / "a.7z"
    with py7zr.SevenZipFile(archive, "w", filters=[{"id": FILTER_NACRITH, "preset": 1}]) as z:
        z.writestr(english[:90], "a.txt")
    with py7zr.SevenZipFile(archive) as z:
        z.extractall(tmp_path / "out")
    assert (tmp_path / "out" / "a.txt").read_bytes() == english[:90]
    with pytest.raises(ValueError, match="preset must be"):  # the filter passes it on
        py7zr.SevenZipFile(tmp_path / "b.7z", "w", filters=[{"id": FILTER_NACRITH, "preset": 10}])
    monkeypatch.setenv("NACRITH_OPTIONS", "preset=1")
    with fsspec.open("memory://p/a.txt.nc", "wb", compression="nacrith") as f:
        f.write(english[:70])
    with fsspec.open("memory://p/a.txt.nc", "rb") as f:
        assert stream_info(f.read())["level"] == 1


@needs_gemma
def test_level_9_takes_gemma_unless_a_model_is_given(english):
    packed = nc.compress(english[:50], preset=9)
    header = container.parse_header(packed)[0]
    assert header.model_name == "" and header.config.window == 2048  # named: by its SHA-256
    assert stream_info(packed)["model"] == "gemma-3-270m-q4_k_m.gguf"
    assert stream_info(packed)["level"] == 9 and nc.decompress(packed) == english[:50]
    packed = nc.compress(english[:50], preset=9, model="smollm2-135m")
    assert stream_info(packed)["level"] == 8
    assert GEMMA in presets.LEVELS[9].model
