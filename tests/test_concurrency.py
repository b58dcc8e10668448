"""Concurrency: threads and processes compressing and decompressing different inputs at
the same time, over one shared model per process, all produce the single-threaded bytes."""

import concurrent.futures
import multiprocessing
import os
import subprocess
import sys

import nacrith_codec as nc
from conftest import SMALL


def _inputs(alice):
    start = alice.index(b"Alice was beginning")
    return [alice[start + 150 * i:start + 150 * i + 150 + 20 * i] for i in range(4)]


def _round_trip(data):
    """One llama.cpp thread per coder: the bytes do not depend on it, and coders side by
    side with a thread per core each would spin against each other (issue 37)."""
    packed = nc.compress(data, threads=1, **SMALL)
    return packed, nc.decompress(packed, threads=1)


def test_threads_share_the_model_and_agree_with_one_thread(alice):
    inputs = _inputs(alice)
    expected = [nc.compress(data, **SMALL) for data in inputs]
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(_round_trip, inputs * 2))  # 8 jobs, 4 at a time
    for (packed, back), data, want in zip(results, inputs * 2, expected * 2):
        assert back == data and packed == want


def test_processes_agree_with_this_one(alice):
    inputs = _inputs(alice)[:2]
    expected = [nc.compress(data, **SMALL) for data in inputs]
    with concurrent.futures.ProcessPoolExecutor(
            max_workers=2, mp_context=multiprocessing.get_context("spawn")) as pool:
        results = list(pool.map(_round_trip, inputs))
    for (packed, back), data, want in zip(results, inputs, expected):
        assert back == data and packed == want


def test_threads_decompress_while_others_compress(alice):
    inputs = _inputs(alice)
    packed = [nc.compress(data, **SMALL) for data in inputs[:2]]
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        decoding = [pool.submit(nc.decompress, p) for p in packed]
        coding = [pool.submit(nc.compress, data, **SMALL) for data in inputs[2:]]
        assert [f.result() for f in decoding] == inputs[:2]
        assert [nc.decompress(f.result()) for f in coding] == inputs[2:]


def test_llama_cpp_threads_spin_briefly_unless_the_user_chose_a_wait_policy():
    """llama.cpp's OpenMP threads check a barrier a bounded number of times before they
    sleep (engines/llamacpp.py: SPIN_COUNT), so that a core taken by another process does
    not stall them; a wait policy in the environment is the user's and is kept."""
    probe = ("import os, nacrith_codec as nc; from nacrith_codec.engines.llamacpp import _llama;"
             " _llama(); print(os.environ.get('GOMP_SPINCOUNT'))")
    clean = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    for extra, expected in (({}, "1000"), ({"OMP_WAIT_POLICY": "active"}, "None"),
                            ({"GOMP_SPINCOUNT": "5"}, "5")):
        r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                           env={**clean, **extra}, timeout=300)
        assert r.returncode == 0 and r.stdout.split() == [expected], r.stderr
