"""rlpad.store.Store over the real GCS JSON protocol, against an in-memory emulator on
127.0.0.1 (gcp-storage-emulator); nothing leaves the machine."""
from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from conftest import record_writes

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the helper beside this file
# Imported before rlpad.store: the helper sets GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT=false first.
from gcs_emulator import (  # noqa: E402,F401  (gcs_emulator, gcs_uri: fixtures)
    REPO, GcsEmulator, emulator_executable, free_port, gcs_emulator, gcs_uri)

from rlpad.store import (  # noqa: E402
    MANIFEST, ChecksumError, MissingStageError, Store, StoreError, sha256_file)

pytestmark = pytest.mark.skipif(emulator_executable() is None,
                                reason="gcp-storage-emulator is not installed")

RUN, STAGE = "r1", "1-fit"


def _write_stage(store: Store, tmp_path: Path, payload: bytes = b"weights" * 1000) -> dict:
    w = store.writer(RUN, STAGE)
    w.begin()
    src = tmp_path / "model.weights.h5"
    src.write_bytes(payload)
    w.put_file(str(src))
    w.put_json("metrics.json", {"score": 1.5})
    w.put_bytes("notes.txt", b"hello")
    return w.commit(config={"lr": 0.1}, config_hash="abc", metrics={"score": 1.5})


def test_plain_gcsfs_class_is_used(gcs_uri):
    import gcsfs.core

    store = Store(gcs_uri)
    assert type(store.fs) is gcsfs.core.GCSFileSystem  # not the experimental one that stalls
    assert store.endpoint == os.environ["STORAGE_EMULATOR_HOST"]


def test_publish_and_read_back(gcs_uri, tmp_path, monkeypatch):
    store = Store(gcs_uri)
    order = record_writes(monkeypatch)  # every object path the store writes, in order
    assert store.manifest(RUN, STAGE) is None
    m = _write_stage(store, tmp_path)
    assert order[-1].endswith(f"/{STAGE}/{MANIFEST}") and len(order) == 6  # manifest last
    assert [p.rsplit("/", 1)[-1] for p in order].count("status.json") == 2  # running, done
    assert set(m["files"]) == {"model.weights.h5", "metrics.json", "notes.txt"}

    fresh = Store(gcs_uri)  # another process's view: nothing cached
    reader = fresh.require(RUN, STAGE)
    assert reader.manifest_sha256 == m["_sha256"]
    assert reader.metrics == {"score": 1.5}
    cache = tmp_path / "cache"
    p = reader.local_path("model.weights.h5", cache_dir=str(cache))
    assert Path(p).is_relative_to(cache)
    assert Path(p).read_bytes() == b"weights" * 1000
    assert sha256_file(p) == m["files"]["model.weights.h5"]["sha256"]
    assert reader.read_json("metrics.json") == {"score": 1.5}
    with pytest.raises(StoreError, match="no file 'absent.bin'"):
        reader.local_path("absent.bin", cache_dir=str(cache))


def test_flipped_byte_is_a_checksum_error_naming_the_file(gcs_uri, tmp_path):
    store = Store(gcs_uri)
    _write_stage(store, tmp_path)
    obj = store.path(RUN, STAGE, "model.weights.h5")
    data = bytearray(store.fs.cat_file(obj))
    data[100] ^= 0x01
    store.fs.pipe_file(obj, bytes(data))
    reader = Store(gcs_uri).require(RUN, STAGE)
    with pytest.raises(ChecksumError, match=r"model\.weights\.h5.*fails its checksum"):
        reader.local_path("model.weights.h5", cache_dir=str(tmp_path / "cache"))
    # the untouched files still verify
    assert reader.local_path("notes.txt", cache_dir=str(tmp_path / "cache"))


def test_corrupt_manifest_is_a_checksum_error(gcs_uri, tmp_path):
    store = Store(gcs_uri)
    _write_stage(store, tmp_path)
    store.fs.pipe_file(store.path(RUN, STAGE, MANIFEST), b"{not json")
    with pytest.raises(ChecksumError, match="1-initial-fit.sh"):
        store.manifest(RUN, STAGE)


def test_checkpoints_save_load_replace(gcs_uri, tmp_path):
    store = Store(gcs_uri)
    assert store.load_checkpoint(RUN, STAGE, str(tmp_path / "none")) is None
    src = tmp_path / "ck"
    src.mkdir()
    (src / "model.weights.h5").write_bytes(b"step-10")
    (src / "opt.json").write_text('{"lr": 1}')
    store.save_checkpoint(RUN, STAGE, str(src), 10, {"episodes": 3})
    (src / "model.weights.h5").write_bytes(b"step-20")
    store.save_checkpoint(RUN, STAGE, str(src), 20, {"episodes": 7})
    assert store._checkpoint_steps(RUN, STAGE) == [20]  # only the newest is kept

    # a newer folder without COMPLETE.json (killed mid-save) is not a checkpoint
    store.fs.pipe_file(store.path(RUN, STAGE, "_ckpt/000000000030/model.weights.h5"), b"half")
    dst = tmp_path / "restored"
    marker = Store(gcs_uri).load_checkpoint(RUN, STAGE, str(dst))
    assert marker is not None and marker["step"] == 20 and marker["info"] == {"episodes": 7}
    assert (dst / "model.weights.h5").read_bytes() == b"step-20"
    assert json.loads((dst / "opt.json").read_text()) == {"lr": 1}

    # a damaged checkpoint file is refused, not silently resumed from
    store.fs.pipe_file(store.path(RUN, STAGE, "_ckpt/000000000020/opt.json"), b"{}")
    with pytest.raises(ChecksumError, match="opt.json"):
        store.load_checkpoint(RUN, STAGE, str(tmp_path / "again"))

    store.clear_checkpoints(RUN, STAGE)
    assert store._checkpoint_steps(RUN, STAGE) == []


_DYING_WRITER = textwrap.dedent("""
    import os, sys, time
    from rlpad.store import Store
    store = Store(sys.argv[1])
    w = store.writer("r1", "1-fit")
    w.begin()
    for i in range(3):
        w.put_bytes(f"part-{i}.bin", os.urandom(1000))
    print("UPLOADED", flush=True)
    time.sleep(60)  # killed here, before commit
""")


def test_writer_killed_before_commit_leaves_no_manifest(gcs_uri, tmp_path):
    store = Store(gcs_uri)
    _write_stage(store, tmp_path, payload=b"old")  # a complete earlier run of the stage
    assert store.manifest(RUN, STAGE) is not None

    child = subprocess.Popen([sys.executable, "-c", _DYING_WRITER, gcs_uri],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = child.stdout.readline()
        assert line.strip() == "UPLOADED", child.stderr.read()
    finally:
        child.kill()
        child.wait(timeout=10)
    assert store.exists(store.path(RUN, STAGE, "part-2.bin"))  # the uploads did land...
    assert store.manifest(RUN, STAGE) is None  # ...but begin() withdrew the old manifest
    with pytest.raises(MissingStageError, match="1-initial-fit.sh"):
        store.require(RUN, STAGE)

    m = _write_stage(Store(gcs_uri), tmp_path, payload=b"new")  # a fresh writer completes
    reader = Store(gcs_uri).require(RUN, STAGE)
    assert reader.manifest_sha256 == m["_sha256"]
    assert Path(reader.local_path("model.weights.h5", str(tmp_path / "c"))).read_bytes() == b"new"


def _no_gcsfs_noise(caplog) -> None:
    loud = [r for r in caplog.records
            if r.name.startswith("gcsfs") and r.levelno >= logging.WARNING]
    assert not loud, [r.getMessage() for r in loud]


def test_missing_bucket_is_a_clear_store_error(gcs_emulator, caplog):
    t0 = time.monotonic()
    with pytest.raises(StoreError) as ei:
        Store("gs://no-such-bucket-rlpad/runs")
    assert time.monotonic() - t0 < 5
    msg = str(ei.value)
    assert "'no-such-bucket-rlpad'" in msg and "does not exist" in msg and "RLPAD_STORE" in msg
    assert ei.value.__suppress_context__  # no gcsfs traceback chained under it
    _no_gcsfs_noise(caplog)


def test_unreachable_endpoint_is_a_clear_store_error(gcs_emulator, monkeypatch, caplog):
    port = free_port()  # bound then closed: nothing listens there
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{port}")
    t0 = time.monotonic()
    with pytest.raises(StoreError) as ei:
        Store(f"gs://{gcs_emulator.bucket}/runs")
    assert time.monotonic() - t0 < 10
    msg = str(ei.value)
    assert f"127.0.0.1:{port}" in msg and "unreachable" in msg
    assert "RLPAD_STORE" in msg and "STORAGE_EMULATOR_HOST" in msg
    _no_gcsfs_noise(caplog)


def test_killed_emulator_is_a_clear_store_error(gcs_emulator, monkeypatch):
    with GcsEmulator(bucket="doomed") as emu:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", emu.url)
        Store("gs://doomed/runs")  # fine while it lives
        emu.kill()
        t0 = time.monotonic()
        with pytest.raises(StoreError, match="unreachable"):
            Store("gs://doomed/runs")
        assert time.monotonic() - t0 < 10


def test_silent_endpoint_times_out(gcs_emulator, monkeypatch):
    # A socket that accepts connections but never answers: a hang unless check() bounds it.
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(8)
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{srv.getsockname()[1]}")
        store = Store(f"gs://{gcs_emulator.bucket}/runs", probe=False)
        t0 = time.monotonic()
        with pytest.raises(StoreError, match="no answer about bucket 'rlpad-test'"):
            store.check(timeout=1.5)
        assert time.monotonic() - t0 < 5


def test_transport_errors_become_store_errors(gcs_uri, monkeypatch):
    import aiohttp

    store = Store(gcs_uri)
    with pytest.raises(FileNotFoundError):  # a plain missing object stays what it is
        store.read_bytes(store.path(RUN, STAGE, "nothing.bin"))

    def broken(*a, **k):
        raise aiohttp.ServerDisconnectedError()

    monkeypatch.setattr(store.fs, "exists", broken)
    with pytest.raises(StoreError,
                       match=rf"lookup of gs://.*/{STAGE}/{MANIFEST} failed.*RLPAD_STORE"):
        store.manifest(RUN, STAGE)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"  # a zombie waiting for its reaper is gone for our purposes


def test_emulator_script_start_stop(tmp_path, monkeypatch):
    script = REPO / "scripts" / "gcs-emulator.sh"
    pidfile = tmp_path / "emu.pid"
    env = {k: v for k, v in os.environ.items() if k != "STORAGE_EMULATOR_HOST"}
    out = subprocess.run(["bash", str(script), "start", "--bucket", "scripted", "--pidfile",
                          str(pidfile)], capture_output=True, text=True, timeout=30, env=env)
    assert out.returncode == 0, out.stderr
    pid = int(pidfile.read_text())
    try:
        assert _alive(pid)
        exports = dict(line.removeprefix("export ").split("=", 1)
                       for line in out.stdout.splitlines())
        assert exports["GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT"] == "false"
        port = Path(f"{pidfile}.port").read_text().strip()
        assert exports["STORAGE_EMULATOR_HOST"] == f"http://127.0.0.1:{port}"
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", exports["STORAGE_EMULATOR_HOST"])
        store = Store("gs://scripted/runs")  # the --bucket was created
        store.write_bytes(store.path(RUN, STAGE, "x"), b"1")
        assert store.read_bytes(store.path(RUN, STAGE, "x")) == b"1"
    finally:
        stop = subprocess.run(["bash", str(script), "stop", "--pidfile", str(pidfile)],
                              capture_output=True, text=True, timeout=30)
    assert stop.returncode == 0, stop.stderr
    assert not pidfile.exists()
    assert not _alive(pid)


_LATE_ENV = textwrap.dedent("""
    import os, sys
    os.environ.pop("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", None)
    import gcsfs, gcsfs.core  # imported first: gcsfs picked its experimental class
    assert gcsfs.GCSFileSystem is not gcsfs.core.GCSFileSystem
    sys.path.insert(0, sys.argv[1])
    import fsspec
    from gcs_emulator import ensure_plain_gcsfs
    from rlpad.store import Store
    assert type(Store(sys.argv[2]).fs) is gcsfs.core.GCSFileSystem  # Store picks the plain one
    assert ensure_plain_gcsfs() is True and ensure_plain_gcsfs() is False
    assert fsspec.get_filesystem_class("gs") is gcsfs.core.GCSFileSystem
    print("OK")
""")


def test_gcsfs_imported_before_the_setting(gcs_uri):
    out = subprocess.run([sys.executable, "-c", _LATE_ENV, str(Path(__file__).parent), gcs_uri],
                         capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "OK", out.stderr
