"""The exact engine on a GPU (``device="cuda"``): the same streams as on the CPU.

Each round trip runs twice: on ``fake-cuda``, a stand-in for CuPy (fake_cupy.py) that
computes with numpy but refuses host arrays in device operations, as CuPy does, so
the CPU proves that everything goes where it must and comes back; and on ``cuda``, a
real GPU through CuPy, skipped (saying so) where there is none.  A stream written on
the device is the stream written on the CPU, byte for byte, and decodes on either.
"""

import json
import subprocess
import sys

import numpy as np
import pytest

import nacrith_codec as nc
from nacrith_codec.config import MODEL_ALONE
from nacrith_codec.engines.exact import device, selfcheck
from nacrith_codec.errors import NacrithError

import fake_cupy
from conftest import EXACT_SMALL

GPUS = device.gpu_count()
NO_GPU = "no CUDA GPU here (CuPy cannot be imported or finds no device)"


@pytest.fixture(params=["fake-cuda", pytest.param("cuda", marks=pytest.mark.skipif(
    not GPUS, reason=NO_GPU))])
def gpu(request, monkeypatch):
    """The device name a test passes as ``device``: a fake GPU, or the real one."""
    if request.param == "fake-cuda":
        with fake_cupy.installed(monkeypatch):
            yield "cuda"
    else:
        yield "cuda"


#: every ensemble setting: the defaults (neural cache on), no cache (version 6), the
#: model alone, the skip (rows coded without the model)
SETTINGS = {"defaults": {}, "no-cache": dict(cache_size=0), "model-alone": MODEL_ALONE,
            "skip": dict(skip_ppm=500000, cache_size=0)}


@pytest.fixture(scope="module")
def inputs(english):
    """Text, and an input of any kind: binary and text segments."""
    mixed = bytes(range(256)) + english[:120] + b"\x00" * 200
    return {"text": english[:200], "any-file": mixed}


@pytest.mark.parametrize("setting", SETTINGS)
def test_a_stream_written_on_the_gpu_is_the_cpus_and_decodes_on_both(gpu, inputs, setting):
    options = {**EXACT_SMALL, **SETTINGS[setting]}
    kinds = ["text", "any-file"] if setting == "defaults" else ["text"]
    for kind in kinds:
        data = inputs[kind]
        on_gpu = nc.compress(data, device=gpu, **options)
        on_cpu = nc.compress(data, **options)
        assert on_gpu == on_cpu, (kind, setting)  # so the CPU decodes it (test_roundtrip.py)
        assert nc.decompress(on_cpu, device=gpu) == data  # and the GPU the CPU's


def test_the_gpus_logits_are_the_cpus_bit_for_bit(gpu):
    """The device check's own comparison, on the small network (streams that join late,
    sit out steps and slide), after the device passed it once in ``select``."""
    chosen = selfcheck.select(gpu)
    assert chosen.gpu and chosen.name == "cuda:0"
    assert selfcheck.compare(chosen, streams=5, steps=24) == []


def test_the_device_check_runs_the_real_architecture(gpu, tmp_path):
    """``python -m nacrith_codec.bench.device`` as a GPU machine runs it, made small:
    exactness at two stream counts, speed at two, JSON written."""
    from nacrith_codec.bench import device as bench
    out = tmp_path / "device.json"
    rc = bench.main(["--device", gpu, "--layers", "2", "--vocab", "4096", "--check", "1,7",
                     "--check-steps", "4", "--streams", "1,8", "--cpu-streams", "8",
                     "--steps", "3", "--json", str(out)])
    report = json.loads(out.read_text())
    assert rc == 0 and report["identical"] and report["device"] == "cuda:0"
    assert [r["streams"] for r in report["speed"]] == [1, 8]
    assert all(r["tokens_per_s"] > 0 for r in report["speed"] + report["cpu_speed"])
    assert report["check"][1]["tokens"] > 7  # every stream took part


def test_a_gpu_that_computes_differently_is_refused(monkeypatch, english):
    """A GPU whose products differ in one last bit (what TF32 or a fused multiply-add
    would do to real-valued operands) never writes a stream."""
    with fake_cupy.installed(monkeypatch):
        fake = sys.modules["cupy"]
        exact_matmul = fake.matmul

        def off_by_one_ulp(a, b):
            out = exact_matmul(a, b)
            return fake.asarray(np.nextafter(fake.asnumpy(out), np.inf).astype(np.float32))
        fake.matmul = off_by_one_ulp
        with pytest.raises(device.DeviceError, match="differently from the CPU.*device='cpu'"):
            selfcheck.select("cuda")
        with pytest.raises(device.DeviceError):
            nc.compress(english[:200], device="cuda", **EXACT_SMALL)


def test_devices_are_named_and_missing_ones_say_what_to_install(monkeypatch):
    for bad in ("gpu", "cuda:x", "", 0):
        with pytest.raises(ValueError, match="device must be one of cpu, cuda, auto"):
            nc.compress(b"x", device=bad, **EXACT_SMALL)
    with pytest.raises(ValueError, match="exact engine.*n_gpu_layers"):
        nc.NacrithCompressor(device="cuda", engine="llama.cpp")  # no such placement
    monkeypatch.setitem(sys.modules, "cupy", None)  # CuPy not installed
    selfcheck._gpu.cache_clear()
    assert selfcheck.select("auto") is device.CPU
    with pytest.raises(device.DeviceError, match=r'pip install "nacrith-codec\[gpu\]"'):
        selfcheck.select("cuda")
    selfcheck._gpu.cache_clear()
    with fake_cupy.installed(monkeypatch, devices=1):
        with pytest.raises(device.DeviceError, match="cuda:2 asked for.*finds 1"):
            selfcheck.select("cuda:2")
        assert selfcheck.select("auto").name == "cuda:0"
    assert issubclass(device.DeviceError, NacrithError)


def test_the_command_line_takes_a_device(tmp_path, english):
    """--device cpu and auto write the default stream; an unknown device is an error."""
    src = tmp_path / "a.txt"
    src.write_bytes(english[:120])
    flags = ["--engine", "exact", "--streams", "1", "--window", "48", "--slide", "16"]
    run = lambda *a: subprocess.run([sys.executable, "-m", "nacrith_codec.cli", *a],
                                    capture_output=True)
    done = run(*flags, "--device", "auto", "-c", str(src))
    assert done.returncode == 0, done.stderr
    assert nc.decompress(done.stdout) == english[:120]
    bad = run(*flags, "--device", "tpu", "-c", str(src))
    assert bad.returncode != 0 and b"device must be one of" in bad.stderr
