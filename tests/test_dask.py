"""nacrith over Dask: a real LocalCluster of two worker processes, each running the real
model, writing into memory:// and temporary directories through fsspec."""

import concurrent.futures as cf
import io
import json
import os
import signal
import time
import urllib.request

import fsspec
import pytest
from fsspec.callbacks import Callback
from distributed import Client, LocalCluster

import nacrith_codec as nc
from conftest import SMALL
from nacrith_codec.cli import main
from nacrith_codec import engines
from nacrith_codec.engines import Engine
from nacrith_codec.errors import EnvironmentMismatchError, ModelMismatchError
from nacrith_codec.plugins import dask_tasks
from nacrith_codec.plugins.dask_cluster import compress_files, decompress_files
from nacrith_codec.random_access import read_index

OPTS = dict(SMALL, block_size=400)  # 400-byte blocks: a 2 KB file is 5 tasks


@pytest.fixture(scope="module")
def cluster():
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=":0") as cluster:
        yield cluster


@pytest.fixture
def client(cluster):
    with Client(cluster) as client:
        client.wait_for_workers(2)
        yield client


@pytest.fixture
def memory_dest(tmp_path):
    url = f"memory://dask-{tmp_path.name}"
    yield url
    fs = fsspec.filesystem("memory")
    if fs.exists(url):
        fs.rm(url, recursive=True)


@pytest.fixture
def tree(tmp_path, alice):
    """A small directory tree of corpus excerpts, an empty file and binary bytes."""
    files = {"a.txt": alice[2000:2300], "sub/b.txt": alice[40000:40250],
             "sub/deeper/c.bin": bytes(range(256)) + b"\x00" * 64, "empty.txt": b""}
    root = tmp_path / "tree"
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root, files


def _all_names(fs, root):
    return sorted(p[len(root):] for p in fs.find(root, withdirs=False))


def test_tree_compresses_as_one_machine_does_and_decompresses(client, tree, memory_dest, tmp_path):
    root, files = tree
    progress = Callback()
    report = compress_files([str(root)], memory_dest, client=client, callback=progress, **OPTS)
    assert report.ok, report.summary()
    fs = fsspec.filesystem("memory")
    dest = memory_dest.replace("memory://", "/")
    # every output, and nothing else (no temporary files), under the same relative names
    assert _all_names(fs, dest) == sorted(f"/{name}.nc" for name in files)
    for name, data in files.items():
        assert fs.cat_file(f"{dest}/{name}.nc") == nc.compress(data, **OPTS), name
    assert progress.value == progress.size == sum(map(len, files.values()))
    by_name = {f.source.rsplit("/tree/", 1)[1]: f for f in report.files}
    a = by_name["a.txt"]
    assert (a.bytes_in, a.bytes_out) == (300, len(nc.compress(files["a.txt"], **OPTS)))
    assert a.bpb == 8 * a.bytes_out / 300
    assert report.totals()["ok"] == 4 and report.totals()["failed"] == 0
    # Dask's dashboard is up and groups the work under nacrith's task names
    with urllib.request.urlopen(client.dashboard_link, timeout=30) as page:
        assert page.status == 200
    prefixes = client.run_on_scheduler(lambda dask_scheduler: list(dask_scheduler.task_prefixes))
    assert "nacrith-encode-block" in prefixes
    # one model per worker process, however many tasks it ran
    assert all(n <= 1 for n in client.run(lambda: Engine.loads).values())
    assert sum(f.blocks for f in report.files) > 2

    back = tmp_path / "back"
    report = decompress_files([f"{memory_dest}/**/*.nc"], str(back), client=client)
    assert report.ok, report.summary()
    for name, data in files.items():
        assert (back / name).read_bytes() == data, name


def test_a_big_file_spreads_over_the_workers_into_one_stream(client, alice, tmp_path):
    data = alice[60000:62000]
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "big.txt").write_bytes(data)
    report = compress_files([str(tmp_path / "in" / "big.txt")], str(tmp_path / "out"),
                            client=client, **OPTS)
    (big,) = report.files
    assert big.status == "ok" and big.blocks == 5 and big.workers == 2, report.summary()
    packed = (tmp_path / "out" / "big.txt.nc").read_bytes()
    assert packed == nc.compress(data, **OPTS)
    assert nc.decompress(packed) == data  # one machine reads what the cluster wrote
    report = decompress_files([str(tmp_path / "out")], str(tmp_path / "back"), client=client)
    (big,) = report.files
    assert big.status == "ok" and big.blocks == 5 and big.workers == 2, report.summary()
    assert (tmp_path / "back" / "big.txt").read_bytes() == data


def test_a_killed_worker_does_not_corrupt_the_result(client, alice, tmp_path):
    data = alice[80000:82400]
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "k.txt").write_bytes(data)
    pids = client.run(os.getpid)
    with cf.ThreadPoolExecutor(1) as pool:
        job = pool.submit(compress_files, [str(tmp_path / "in")], str(tmp_path / "out"),
                          client=client, **OPTS)
        victim = None
        while victim is None and not job.done():
            busy = {w: keys for w, keys in client.processing().items()
                    if any(str(k).startswith("nacrith-encode-block") for k in keys)}
            victim = next(iter(busy), None)
            time.sleep(0.2)
        assert victim is not None, "no block was ever being coded"
        time.sleep(0.7)  # into the block: its start has reached the client, its end has not
        os.kill(pids[victim], signal.SIGKILL)
        report = job.result(timeout=600)
    (k,) = report.files
    assert report.ok and k.rerun_blocks >= 1, report.summary()
    assert (tmp_path / "out" / "k.txt.nc").read_bytes() == nc.compress(data, **OPTS)
    assert sorted(os.listdir(tmp_path / "out")) == ["k.txt.nc"]  # no temporary file left
    client.wait_for_workers(2, timeout=120)  # the nanny restarted it


def test_failed_files_are_reported_and_leave_no_output(client, alice, tmp_path, memory_dest,
                                                       other_model):
    src = tmp_path / "packed"
    src.mkdir()
    good, text = nc.compress(alice[:150], **OPTS), alice[3000:3700]
    (src / "good.txt.nc").write_bytes(good)
    # two blocks, the second damaged: the first is decoded (and written) before it fails
    two = bytearray(nc.compress(text, **OPTS))
    index = read_index(io.BytesIO(bytes(two)))
    two[(index.offsets[1] + index.ends[1]) // 2] ^= 0x10
    (src / "damaged.txt.nc").write_bytes(bytes(two))
    (src / "plain.txt.nc").write_bytes(b"not a nacrith stream at all")
    (src / "other.txt.nc").write_bytes(nc.compress(alice[:40], model=other_model, **OPTS))
    (src / "notes.txt").write_bytes(b"not a stream, not named like one: not an input")

    report = decompress_files([str(src)], memory_dest, client=client)
    assert not report.ok
    status = {f.source.rsplit("/", 1)[1]: f for f in report.files}
    assert status["good.txt.nc"].status == "ok"
    assert "CorruptError" in status["damaged.txt.nc"].error
    assert "FormatError" in status["plain.txt.nc"].error
    assert "ModelMismatchError" in status["other.txt.nc"].error
    assert {f.source.rsplit("/", 1)[1] for f in report.failed} == {
        "damaged.txt.nc", "plain.txt.nc", "other.txt.nc"}
    assert len(report.files) == 4
    fs, dest = fsspec.filesystem("memory"), memory_dest.replace("memory://", "/")
    assert _all_names(fs, dest) == ["/good.txt"]  # nothing partial, no temporary file
    assert fs.cat_file(f"{dest}/good.txt") == alice[:150]
    assert "damaged.txt.nc: failed: CorruptError" in report.summary()
    assert json.loads(report.to_json())["totals"]["failed"] == 3

    with pytest.raises(FileNotFoundError, match="matches no file"):  # before any work
        decompress_files([str(src / "*.gz")], memory_dest, client=client)

    # outputs that exist: an error by default, skipped or overwritten on request
    again = decompress_files([str(src / "good.txt.nc")], memory_dest, client=client)
    assert again.files[0].status == "failed" and "exists" in again.files[0].error
    assert decompress_files([str(src / "good.txt.nc")], memory_dest, client=client,
                            existing="skip").files[0].status == "skipped"
    fs.pipe_file(f"{dest}/good.txt", b"stale")
    assert decompress_files([str(src / "good.txt.nc")], memory_dest, client=client,
                            existing="overwrite").ok
    assert fs.cat_file(f"{dest}/good.txt") == alice[:150]


def test_workers_that_differ_are_refused_before_any_work(client, other_model, tmp_path):
    (tmp_path / "x.txt").write_bytes(b"some text")
    first = sorted(client.nthreads())[0]
    path = str(other_model)
    client.run(lambda: os.environ.update(NACRITH_MODEL=path), workers=[first])
    try:
        with pytest.raises(ModelMismatchError, match="workers differ"):
            compress_files([str(tmp_path / "x.txt")], str(tmp_path / "out"), client=client)
    finally:
        client.run(lambda: os.environ.pop("NACRITH_MODEL", None), workers=[first])
    assert not (tmp_path / "out").exists()
    # a worker that joins later is checked by each task: its blocks are refused
    settings = dask_tasks.Settings(None, 0, "00" * 32, {}, nc.CodecConfig(**OPTS))
    done = client.submit(dask_tasks.compress_block, settings,
                         dask_tasks.Source("memory://none", 0, 0, data=b"x"), b"", 0).result()
    assert isinstance(done.error, ModelMismatchError)
    sha = dask_tasks.describe(None, 0)["sha256"]
    settings = dask_tasks.Settings(None, 0, sha, {"llama_cpp_python": "elsewhere"},
                                   nc.CodecConfig(**OPTS))
    done = client.submit(dask_tasks.compress_block, settings,
                         dask_tasks.Source("memory://none", 0, 0, data=b"x"), b"", 0).result()
    assert isinstance(done.error, EnvironmentMismatchError)


def test_cli_compresses_and_decompresses_over_a_scheduler(cluster, tree, tmp_path, capsys):
    root, files = tree
    out, back, report = tmp_path / "out", tmp_path / "back", tmp_path / "report.json"
    codec = ["--block-size", "400", "--streams", "2", "--window", "48", "--slide", "16"]
    rc = main(["cluster", str(root), "-o", str(out), "--scheduler", cluster.scheduler_address,
               "--report", str(report), "--verify", *codec])
    assert rc == 0, capsys.readouterr().err
    err = capsys.readouterr().err
    assert "dashboard" in err and "4 of 4 files ok" in err
    options = dict(block_size=400, streams=2, window=48, slide=16)
    for name, data in files.items():
        assert (out / f"{name}.nc").read_bytes() == nc.compress(data, **options), name
    totals = json.loads(report.read_text())["totals"]
    assert totals["ok"] == 4 and totals["bytes_in"] == sum(map(len, files.values()))

    assert main(["cluster", "-d", str(out), "-o", str(back), "--scheduler",
                 cluster.scheduler_address, "-q", "--send-inputs"]) == 0
    for name, data in files.items():
        assert (back / name).read_bytes() == data, name
    # the same again: the outputs exist, so every file fails (exit 1), and -f overwrites
    assert main(["cluster", "-d", str(out), "-o", str(back), "--scheduler",
                 cluster.scheduler_address, "-q"]) == 1
    assert "exists" in capsys.readouterr().err
    assert main(["cluster", "-d", str(out), "-o", str(back), "-f", "--scheduler",
                 cluster.scheduler_address, "-q"]) == 0


def _damage_records(on: bool):
    """On a worker: make (or stop making) every block record come out damaged."""
    from nacrith_codec.pipeline.block import BlockCoder
    if on:
        honest = BlockCoder.encode

        def damaged(self, data):
            record = bytearray(honest(self, data))
            record[-9] ^= 1  # in the digest: the record's CRC no longer matches
            return bytes(record)

        damaged.honest = honest
        BlockCoder.encode = damaged
    elif hasattr(BlockCoder.encode, "honest"):
        BlockCoder.encode = BlockCoder.encode.honest


def test_verify_catches_a_worker_that_writes_damage(client, tmp_path, english):
    import sys

    import cloudpickle
    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import tests
    (tmp_path / "v.txt").write_bytes(english[:200])
    client.run(_damage_records, True)
    try:
        report = compress_files([str(tmp_path / "v.txt")], str(tmp_path / "out"), client=client,
                                verify=True, **OPTS)
    finally:
        client.run(_damage_records, False)
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    (v,) = report.files
    assert v.status == "failed" and v.error.startswith("VerifyError"), report.summary()
    assert not (tmp_path / "out").exists() or not os.listdir(tmp_path / "out")


def test_workers_place_the_exact_engine_where_they_can_and_write_the_same_bytes(client, alice,
                                                                                tmp_path):
    """device="auto": each worker its GPU if it has one, else its CPU (these have none),
    and the stream is the one a single CPU writes; the device travels in the settings."""
    data = alice[70000:70400]
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "x.txt").write_bytes(data)
    exact = dict(OPTS, engine="exact")
    report = compress_files([str(tmp_path / "in")], str(tmp_path / "out"), client=client,
                            device="auto", **exact)
    assert report.ok, report.summary()
    packed = (tmp_path / "out" / "x.txt.nc").read_bytes()
    assert packed == nc.compress(data, **exact)
    report = decompress_files([str(tmp_path / "out")], str(tmp_path / "back"), client=client,
                              device="auto")
    assert report.ok and (tmp_path / "back" / "x.txt").read_bytes() == data
    devices = client.run(lambda: sorted({key[3] for key in engines._engines
                                         if key[2] == "exact"}))
    assert all("auto" in d for d in devices.values()), devices  # each placed "auto"
