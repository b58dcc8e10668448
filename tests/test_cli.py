"""The nacrith command: gzip habits, exit codes, never a complete-looking partial file."""

import os
import subprocess
import sys

import pytest

SMALL_ARGS = ["--streams", "2", "--window", "48", "--slide", "16"]


def nacrith(*args, stdin=None, cwd=None):
    return subprocess.run([sys.executable, "-m", "nacrith_codec.cli", *args], input=stdin,
                          capture_output=True, cwd=cwd, timeout=600)


@pytest.fixture
def text_file(tmp_path, english):
    path = tmp_path / "a.txt"
    path.write_bytes(english[:200])
    return path


def test_compress_then_decompress_a_file(text_file, english):
    r = nacrith(str(text_file), *SMALL_ARGS)
    assert r.returncode == 0, r.stderr
    packed = text_file.with_name("a.txt.nc")
    assert packed.exists() and text_file.exists()  # input kept by default, as zstd
    assert b"bits/byte" in r.stderr and b"tokens/s" in r.stderr
    text_file.unlink()
    r = nacrith("-d", str(packed))
    assert r.returncode == 0, r.stderr
    assert text_file.read_bytes() == english[:200]
    # the output exists now: refused without -f, accepted with it
    assert nacrith("-d", str(packed)).returncode == 1
    assert nacrith("-d", "-f", "--rm", str(packed)).returncode == 0
    assert not packed.exists()


def test_subcommand_spelling_and_output_option(text_file, tmp_path):
    out = tmp_path / "custom.bin"
    assert nacrith("compress", str(text_file), "-o", str(out), *SMALL_ARGS).returncode == 0
    r = nacrith("decompress", str(out), "-c")
    assert r.returncode == 0 and r.stdout == text_file.read_bytes()


def test_stdin_to_stdout(english):
    r = nacrith("-c", *SMALL_ARGS, stdin=english[:90])
    assert r.returncode == 0, r.stderr
    back = nacrith("-d", stdin=r.stdout)
    assert back.returncode == 0 and back.stdout == english[:90]


def test_errors_give_exit_status_1_and_leave_no_output(tmp_path, text_file):
    assert nacrith(str(tmp_path / "missing.txt")).returncode == 1
    bad = tmp_path / "bad.txt.nc"
    bad.write_bytes(b"NACR\x01garbage")
    r = nacrith("-d", str(bad))
    assert r.returncode == 1 and b"CorruptError" in r.stderr or b"TruncatedError" in r.stderr
    assert not (tmp_path / "bad.txt").exists()
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".nacrith-")]
    r = nacrith("-d", str(text_file))
    assert r.returncode == 1 and b"unknown suffix" in r.stderr


def test_truncated_stream_leaves_no_output(tmp_path, text_file):
    assert nacrith(str(text_file), *SMALL_ARGS).returncode == 0
    packed = text_file.with_name("a.txt.nc")
    cut = tmp_path / "cut.nc"
    cut.write_bytes(packed.read_bytes()[:-3])
    r = nacrith("-d", str(cut))
    assert r.returncode == 1 and b"TruncatedError" in r.stderr
    assert not (tmp_path / "cut").exists()


def test_usage_errors_exit_2():
    assert nacrith("--no-such-flag").returncode == 2
    assert nacrith("-z", "-d", "x").returncode == 2


def test_info_describes_without_decoding(text_file):
    nacrith(str(text_file), *SMALL_ARGS)
    r = nacrith("info", str(text_file) + ".nc")
    assert r.returncode == 0
    for word in (b"format_version", b"SmolLM2-135M-Instruct.Q4_1.gguf", b"window=48",
                 b"original_size    200", b"bpb"):
        assert word in r.stdout
    assert nacrith("info", str(text_file)).returncode == 1


def test_bench_compares_with_classical_codecs(text_file):
    r = nacrith("bench", str(text_file))
    assert r.returncode == 0, r.stderr
    for name in (b"gzip -9", b"bzip2 -9", b"xz -9", b"PPMd", b"nacrith"):
        assert name in r.stdout


def test_bench_draws_its_table_as_a_chart(text_file, tmp_path):
    png = tmp_path / "bench.png"
    r = nacrith("bench", "--only-classical", "--chart", str(png), str(text_file))
    assert r.returncode == 0, r.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bench_raw_sets_the_codec_beside_llama_cpp_alone(text_file):
    r = nacrith("bench", "--raw", "--streams", "1", "--limit", "120", str(text_file))
    assert r.returncode == 0, r.stderr
    rows = [line.split() for line in r.stdout.decode().splitlines()[1:]]
    assert [row[2] for row in rows] == ["on", "off"]  # skip on and off
    for row in rows:
        raw, compress, decompress = float(row[3]), float(row[4]), float(row[6])
        assert raw > 0 and compress > 0 and decompress > 0
        assert row[5] == f"{100 * compress / raw:.0f}%"
        shares = [float(x.rstrip("%")) for x in row[10:] if x != "/"]
        assert len(shares) == 4 and 95 <= sum(shares) <= 105  # model, predictors, coder, rest


def test_integrity_test_writes_nothing(tmp_path, text_file):
    assert nacrith(str(text_file), *SMALL_ARGS).returncode == 0
    packed = text_file.with_name("a.txt.nc")
    text_file.unlink()
    r = nacrith("-t", str(packed))
    assert r.returncode == 0 and b"OK (verified)" in r.stderr and not text_file.exists()
    damaged = bytearray(packed.read_bytes())
    damaged[len(damaged) // 2] ^= 0x10
    packed.write_bytes(bytes(damaged))
    assert nacrith("-t", str(packed)).returncode == 1
