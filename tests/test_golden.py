"""Streams written by earlier versions decode forever (see fixtures/make_golden.py)."""

import pytest

import nacrith_codec as nc
from conftest import FIXTURES

GOLDEN = sorted((FIXTURES / "golden").glob("*.nc"))


def test_every_readable_version_has_golden_streams():
    from nacrith_codec.container import READABLE
    versions = {int(p.stem.split("-")[0][1:]) for p in GOLDEN}
    assert versions == set(READABLE)


@pytest.mark.parametrize("stream", GOLDEN, ids=[p.stem for p in GOLDEN])
def test_golden_stream_decodes(stream):
    assert nc.decompress(stream.read_bytes()) == stream.with_suffix(".bin").read_bytes()
