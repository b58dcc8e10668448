"""A llama.cpp engine's stream records the environment its logits depend on; a decoder
in another environment reproduces the data or says what differs.

Changed one at a time on this machine: numpy's SIMD kernels (the environment variable
NPY_DISABLE_CPU_FEATURES makes numpy run its SSE kernels instead of AVX2) here; the
thread count and the worker count in test_workers.py.  From format version 6 the
ensemble's arithmetic is exact, so only llama.cpp's build and CPU features remain
(the exact engine's streams depend on nothing: test_exact.py).
"""

import os
import subprocess
import sys

import nacrith_codec as nc
from nacrith_codec import container
from nacrith_codec.engines import environment
from conftest import SMALL

DECODE = "import sys, nacrith_codec as nc; sys.stdout.buffer.write(nc.decompress(sys.stdin.buffer.read()))"


def test_the_header_records_what_predictions_depend_on(english):
    header, _ = container.parse_header(nc.compress(english[:50], **SMALL))
    assert set(header.env) == {"llama_cpp_python", "cpu"}  # numpy's kernels no longer matter
    assert header.env == environment()


def test_numpy_on_other_simd_kernels_decodes_exactly(english):
    """Versions 4 and 5 depended on numpy's float32 exp (their golden streams name
    numpy_simd when they fail: test_golden.py); version 6's ensemble does not."""
    packed = nc.compress(english[:300], **SMALL)
    env = {**os.environ, "NPY_DISABLE_CPU_FEATURES": "X86_V3 X86_V4 AVX512_ICL AVX512_SPR"}
    r = subprocess.run([sys.executable, "-c", DECODE], input=packed, capture_output=True,
                       env=env, timeout=600)
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    assert r.stdout == english[:300]


def test_an_old_float32_stream_on_other_simd_kernels_decodes_or_names_numpy():
    """A version 5 stream's ensemble used numpy's float32 exp: under numpy's SSE kernels it
    decodes exactly, or fails with EnvironmentMismatchError naming numpy_simd (measured
    here: it fails), never with other bytes."""
    from conftest import FIXTURES
    stream = FIXTURES / "golden" / "v5-blocks.nc"
    env = {**os.environ, "NPY_DISABLE_CPU_FEATURES": "X86_V3 X86_V4 AVX512_ICL AVX512_SPR"}
    r = subprocess.run([sys.executable, "-c", DECODE], input=stream.read_bytes(),
                       capture_output=True, env=env, timeout=600)
    if r.returncode == 0:
        assert r.stdout == stream.with_suffix(".bin").read_bytes()
    else:
        assert b"EnvironmentMismatchError" in r.stderr and b"numpy_simd" in r.stderr, r.stderr
