"""The nacrith command: gzip habits, exit codes, never a complete-looking partial file."""

import os
import subprocess
import sys

import pytest

from conftest import needs_gemma

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


def test_list_gives_sizes_and_ratio_as_gzip_l_and_xz_l(tmp_path, text_file):
    other = tmp_path / "b.txt"
    other.write_bytes(text_file.read_bytes()[:120])
    _cli_ok(*SMALL_ARGS, str(text_file), str(other))
    packed = [tmp_path / "a.txt.nc", tmp_path / "b.txt.nc"]
    r = nacrith("-l", *map(str, packed))
    assert r.returncode == 0, r.stderr
    header, *rows, total = r.stdout.decode().splitlines()
    assert header.split() == ["streams", "blocks", "compressed", "uncompressed", "ratio",
                              "engine", "filename"]
    for row, path, size in zip(rows, packed, (200, 120)):
        streams, blocks, stored, original, ratio, engine, name = row.split()
        assert (streams, blocks, engine, name) == ("1", "1", "exact", str(path))
        assert int(stored.replace(",", "")) == path.stat().st_size
        assert int(original) == size and float(ratio) == round(path.stat().st_size / size, 3)
    assert total.split()[:4] == ["2", "2", f"{sum(p.stat().st_size for p in packed):,}",
                                 "320"] and total.endswith("2 files")
    r = nacrith("-l", str(text_file), str(packed[0]))  # not a stream: named, the rest listed
    assert r.returncode == 1 and str(text_file).encode() in r.stderr
    assert str(packed[0]).encode() in r.stdout
    assert nacrith("-l", "--rm", str(packed[0])).returncode == 2 and packed[0].exists()


def test_help_names_every_subcommand_and_variable():
    r = nacrith("--help")
    for word in (b"nacrith info", b"nacrith 7z", b"nacrith bench", b"nacrith cluster",
                 b"NACRITH_THREADS", b"NACRITH_MODEL", b"NACRITH_MEMLIMIT", b"-l, --list"):
        assert word in r.stdout, word


def test_threads_from_the_environment_are_checked_as_the_option_is(text_file):
    def run(value, *args):
        return subprocess.run([sys.executable, "-m", "nacrith_codec.cli", *args, *SMALL_ARGS,
                               "-c", str(text_file)], capture_output=True, timeout=600,
                              env={**os.environ, "NACRITH_THREADS": value})
    r = run("1000000")
    assert r.returncode == 2 and b"NACRITH_THREADS='1000000'" in r.stderr and not r.stdout
    assert run("two").returncode == 2
    assert run("two", "--threads", "1").returncode == 0  # the option wins
    assert run("1").returncode == 0


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


@needs_gemma
def test_bench_gives_a_row_per_model_and_level(text_file):
    r = nacrith("bench", "--model", "smollm2-135m,gemma3-270m", "--level", "1,2", "--limit",
                "60", "--no-decompress", str(text_file))
    assert r.returncode == 0, r.stderr
    rows = [line.split()[0] for line in r.stdout.decode().splitlines() if "nacrith:" in line]
    assert rows == ["nacrith:smollm2-135m:-1", "nacrith:smollm2-135m:-2",
                    "nacrith:gemma3-270m:-1", "nacrith:gemma3-270m:-2"]
    assert b"model / predictors / coder" in r.stdout


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
        # the share is computed before the rates are rounded for printing (to 0.1 token/s,
        # the share to 1%): within what that rounding allows
        slack = 0.5 + 100 * (0.05 / raw + 0.05 * compress / raw ** 2)
        assert abs(float(row[5].rstrip("%")) - 100 * compress / raw) <= slack
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


def _cli_ok(*args, **kw):
    r = nacrith(*args, **kw)
    assert r.returncode == 0, r.stderr.decode()
    return r


def test_concatenated_streams_decode_as_gzip_xz_and_zstd_do(tmp_path, english):
    import nacrith_codec as nc
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_bytes(english[:60])
    b.write_bytes(english[60:110])
    ab = tmp_path / "ab.nc"
    ab.write_bytes(_cli_ok("-c", *SMALL_ARGS, str(a), str(b)).stdout)
    assert _cli_ok("-d", "-c", str(ab)).stdout == english[:110]
    assert _cli_ok("-d", stdin=ab.read_bytes() * 2).stdout == english[:110] * 2
    with nc.open(ab, "ab", window=48, slide=16) as f:  # the library's append adds a stream
        f.write(b" appended")
    _cli_ok("-d", str(ab))
    assert (tmp_path / "ab").read_bytes() == english[:110] + b" appended"
    info = _cli_ok("info", str(ab)).stdout.decode()
    assert "3 streams" in info and info.count("original_size") == 3
    # anything else after a stream: an error, and no output file
    (tmp_path / "bad.nc").write_bytes(ab.read_bytes() + b"garbage!")
    r = nacrith("-d", str(tmp_path / "bad.nc"))
    assert r.returncode == 1 and b"trailing data after the end of stream 3" in r.stderr
    assert not (tmp_path / "bad").exists()


def test_mode_and_times_are_kept_through_both_directions(tmp_path, english):
    script = tmp_path / "run.sh"
    script.write_bytes(b"#!/bin/sh\necho " + english[:40])
    script.chmod(0o755)
    os.utime(script, ns=(1_000_000_000_000_000_000, 1_100_000_000_123_456_789))
    _cli_ok("--rm", *SMALL_ARGS, str(script))
    packed = tmp_path / "run.sh.nc"
    assert not script.exists() and packed.stat().st_mode & 0o777 == 0o755
    _cli_ok("-d", "--rm", str(packed))
    st = script.stat()
    assert st.st_mode & 0o777 == 0o755 and st.st_mtime_ns == 1_100_000_000_123_456_789
    assert not packed.exists()


def test_names_suffixes_directories_and_standard_streams(tmp_path, text_file):
    _cli_ok(*SMALL_ARGS, str(text_file))
    packed = text_file.with_name("a.txt.nc")
    r = nacrith(str(packed))  # gzip and xz refuse a file that has the suffix already
    assert r.returncode == 1 and b"already has .nc suffix" in r.stderr
    assert not (tmp_path / "a.txt.nc.nc").exists()
    out = _cli_ok("-d", "-o", "-", str(packed), cwd=tmp_path).stdout
    assert out == text_file.read_bytes() and not (tmp_path / "-").exists()
    assert b"original_size" in _cli_ok("info", "-", stdin=packed.read_bytes()).stdout
    folder = tmp_path / "dir"
    folder.mkdir()
    r = nacrith("-d", str(folder))
    assert r.returncode == 1 and b"is a directory" in r.stderr and b"-r" in r.stderr
    r = nacrith("-d", "-f", "-o", str(folder), str(packed))
    assert r.returncode == 1 and b"is a directory" in r.stderr and b"Traceback" not in r.stderr


def test_recursive_compresses_and_restores_a_tree(tmp_path, english):
    root = tmp_path / "tree"
    (root / "sub").mkdir(parents=True)
    (root / "one.txt").write_bytes(english[:30])
    (root / "sub" / "two.txt").write_bytes(english[30:70])
    _cli_ok("-r", "--rm", *SMALL_ARGS, str(root))
    assert sorted(p.name for p in root.rglob("*") if p.is_file()) == ["one.txt.nc", "two.txt.nc"]
    _cli_ok("-d", "-r", "--rm", str(root))
    assert (root / "one.txt").read_bytes() == english[:30]
    assert (root / "sub" / "two.txt").read_bytes() == english[30:70]
    assert not list(root.rglob("*.nc"))


@pytest.mark.parametrize("args", [["--rm", "-c"], ["-k", "--rm"], ["compress", "-d"],
                                  ["-t", "--rm"], ["-o", "x.nc", "-c"], ["decompress", "-z"],
                                  ["--rm", "-o", "-"], ["--threads", "1000000"],
                                  ["--threads", "-5"], ["--threads", "two"],
                                  ["--streams", "0"], ["--window", "4"],
                                  ["-1", "--slide", "300"]])  # level 1's window is 256
def test_conflicting_flags_are_usage_errors(args, text_file):
    before = text_file.read_bytes()
    argv = args[:1] + [str(text_file)] + args[1:] if args[0] in ("compress", "decompress") \
        else args + [str(text_file)]
    r = nacrith(*argv)
    assert r.returncode == 2, r.stderr
    assert text_file.read_bytes() == before


def test_a_missing_input_is_named_in_the_systems_words_as_gzip_does(tmp_path, text_file):
    missing = tmp_path / "missing.txt"
    r = nacrith("-k", str(missing), str(text_file))  # the other input is still coded
    assert r.returncode == 1 and f"nacrith: {missing}: No such file or directory" in \
        r.stderr.decode().splitlines() and (tmp_path / (text_file.name + ".nc")).exists()


def test_parameters_no_stream_may_have_are_one_sentence(text_file):
    r = nacrith("--streams", "0", str(text_file))
    assert r.returncode == 2 and r.stderr.decode().splitlines()[-1] == (
        "nacrith: error: invalid codec parameters: streams must be 1..64")


def test_bench_reports_missing_inputs_without_a_traceback(tmp_path):
    for target in (tmp_path / "missing.txt", tmp_path):
        r = nacrith("bench", str(target))
        assert r.returncode == 1 and b"Traceback" not in r.stderr
        assert b"no such file" in r.stderr or b"is a directory" in r.stderr


def test_errors_say_what_the_input_is_and_what_to_do(tmp_path, text_file):
    import gzip
    _cli_ok(*SMALL_ARGS, str(text_file))
    packed = text_file.with_name("a.txt.nc").read_bytes()
    cases = {"cut.nc": (packed[:len(packed) // 2], b"incomplete"),
             "g.txt.nc": (gzip.compress(b"hello"), b"gzip"),
             "plain.txt.nc": (b"just some words\n" * 4, b"uncompressed text")}
    for name, (data, phrase) in cases.items():
        (tmp_path / name).write_bytes(data)
        r = nacrith("-d", str(tmp_path / name))
        assert r.returncode == 1 and phrase in r.stderr, (name, r.stderr)


def test_info_json_holds_the_environment_as_an_object_and_text_is_escaped(tmp_path, english):
    import json

    from nacrith_codec import container
    writer = container.StreamWriter(container.Header(
        __import__('nacrith_codec').CodecConfig(), bytes(32), "evil\x1b]0;pwned\x07.gguf", {"cpu": "AVX2"}, 0))
    path = tmp_path / "e.nc"
    path.write_bytes(writer.head + writer.end())
    info = json.loads(_cli_ok("info", "--json", str(path)).stdout)
    assert info["streams"][0]["environment"] == {"cpu": "AVX2"}
    text = _cli_ok("info", str(path)).stdout
    assert b"\x1b" not in text and b"\x07" not in text and b"\\x1b]0;pwned" in text
