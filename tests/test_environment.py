"""A decoder in another environment reproduces the data or says what differs.

Changed one at a time on this machine: numpy's SIMD kernels (the environment variable
NPY_DISABLE_CPU_FEATURES makes numpy run its SSE kernels instead of AVX2) here; the
thread count and the worker count in test_workers.py.
"""

import json
import os
import subprocess
import sys

import nacrith_codec as nc
from nacrith_codec import container
from nacrith_codec.engine import environment_json
from conftest import SMALL

DECODE = "import sys, nacrith_codec as nc; sys.stdout.buffer.write(nc.decompress(sys.stdin.buffer.read()))"


def test_the_header_records_what_predictions_depend_on(english):
    header, _ = container.parse_header(nc.compress(english[:50], **SMALL))
    env = json.loads(header.env)
    assert set(env) >= {"llama_cpp_python", "cpu", "numpy", "numpy_simd"}
    assert header.env == environment_json()


def test_numpy_on_other_simd_kernels_decodes_exactly_or_names_the_difference(english):
    packed = nc.compress(english[:300], **SMALL)
    env = {**os.environ, "NPY_DISABLE_CPU_FEATURES": "X86_V3 X86_V4 AVX512_ICL AVX512_SPR"}
    r = subprocess.run([sys.executable, "-c", DECODE], input=packed, capture_output=True,
                       env=env, timeout=600)
    if r.returncode == 0:
        assert r.stdout == english[:300]
    else:
        assert b"EnvironmentMismatchError" in r.stderr and b"numpy_simd" in r.stderr, r.stderr
