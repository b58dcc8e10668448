"""Concurrency: threads and processes compressing and decompressing different inputs at
the same time, over one shared model per process, all produce the single-threaded bytes."""

import concurrent.futures
import multiprocessing

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
