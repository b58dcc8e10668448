"""Coverage-guided fuzzing of the decoder with atheris (not part of the pytest run).

    pip install -e ".[fuzz]"
    python tests/fuzz_atheris.py -atheris_runs=20000 -max_len=4096 fixtures/golden

The corpus directory seeds the mutations (the golden streams are real streams of
every format version).  Any input must decode to bytes or raise a NacrithError; any
other exception, a hang (libFuzzer's -timeout, default 1200 s here) or a crash is
a finding, saved by libFuzzer as crash-<sha1> in the current directory.  A successful
decode must agree with the random-access reader, which takes another path through
the container (the footer and the block index).
"""

import io
import sys

import atheris

with atheris.instrument_imports():
    import nacrith_codec as nc
    from nacrith_codec import container  # noqa: F401  (instrumented)


def one_input(data: bytes):
    try:
        out = nc.decompress(data)
    except nc.NacrithError:
        return
    try:
        again = nc.NacrithFile(io.BytesIO(data)).read()
    except nc.NacrithError:  # e.g. concatenated streams: the seekable reader reads one
        return
    if again != out[:len(again)]:
        raise AssertionError("two readers decoded the same stream to different bytes")


def main():
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
