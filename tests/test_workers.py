"""Parallel workers (blocks coded by processes of their own give the same bytes) and GPU offload."""

import pytest

import nacrith_codec as nc
from nacrith_codec.errors import CorruptError

from conftest import SMALL, forge_first_block
from test_cli import SMALL_ARGS, nacrith

# Four blocks, so that two workers each code two and results must be put back in order.
BLOCKS = dict(SMALL, block_size=160)


@pytest.fixture(scope="module")
def text(english):
    return english[:600]


@pytest.fixture(scope="module")
def serial_stream(text):
    return nc.compress(text, **BLOCKS)


def test_workers_write_the_same_bytes_as_one_process(text, serial_stream):
    c = nc.NacrithCompressor(workers=2, content_size=len(text), **BLOCKS)
    parallel = b"".join(c.compress(text[i:i + 100]) for i in range(0, len(text), 100)) + c.flush()
    assert parallel == serial_stream
    assert c.stats["tokens"] > 0 and sum(c.stats["segments"].values()) == len(text)


def test_workers_decompress_any_stream_fed_in_small_pieces(text, serial_stream):
    seen = []
    d = nc.NacrithDecompressor(workers=2, progress=seen.append)
    out = []
    for i in range(0, len(serial_stream), 50):
        out.append(d.decompress(serial_stream[i:i + 50]))
    while not d.eof:  # blocks still in flight when the input ran out
        assert not d.needs_input
        out.append(d.decompress(b""))
    assert b"".join(out) == text and sum(seen) == len(text)


def test_a_worker_reports_a_corrupt_block(serial_stream):
    from dataclasses import replace
    flip = lambda b: replace(b, payload=bytes([b.payload[0] ^ 0x55]) + b.payload[1:])
    with pytest.raises(CorruptError):
        nc.decompress(forge_first_block(serial_stream, flip), workers=2)


def test_cli_workers_option(tmp_path, text):
    src = tmp_path / "t.txt"
    src.write_bytes(text)
    assert nacrith("-T", "2", "--block-size", "200", *SMALL_ARGS, str(src)).returncode == 0
    packed = tmp_path / "t.txt.nc"
    out = tmp_path / "back.txt"
    done = nacrith("-d", "-T", "2", "-o", str(out), str(packed))
    assert done.returncode == 0, done.stderr
    assert out.read_bytes() == text
    assert nacrith("-T", "0", str(src)).returncode == 2


def test_gpu_offload_is_recorded_in_the_stream(english):
    """This CPU build ignores the offload; a GPU build's decoder learns from the header
    that the writer offloaded, should its decode fail."""
    from nacrith_codec import container
    packed = nc.compress(english[:80], n_gpu_layers=4, **SMALL)
    header, _ = container.parse_header(packed)
    assert header.env["gpu_layers"] == 4
    assert nc.decompress(packed, n_gpu_layers=4) == english[:80]


def test_thread_count_does_not_change_the_bytes(english):
    data = english[:200]
    one = nc.compress(data, threads=1, **SMALL)
    assert nc.compress(data, threads=2, **SMALL) == one
    assert nc.decompress(one, threads=3) == data


def test_closing_an_unfinished_compressor_stops_its_workers(text):
    import multiprocessing
    c = nc.NacrithCompressor(workers=2, **BLOCKS)
    c.compress(text)  # blocks handed to the workers, none collected yet
    c.close()
    assert multiprocessing.active_children() == []
