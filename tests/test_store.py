"""rlpad.store.Store on a local folder: manifests last, checksums, run ids, checkpoints."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from conftest import record_writes

from rlpad.store import (
    MANIFEST, STAGES, ChecksumError, MissingStageError, Store, StoreError, sha256_file,
    validate_run_id)
from rlpad.store.status import (STATUS, effective_state, fail_running, read_status,
                                report_progress)

RUN, STAGE = "r1", "1-fit"


def _write_stage(store: Store, tmp_path: Path, payload: bytes = b"weights" * 100,
                 run: str = RUN) -> dict:
    w = store.writer(run, STAGE)
    w.begin()
    src = tmp_path / "model.weights.h5"
    src.write_bytes(payload)
    w.put_file(str(src))
    w.put_json("metrics.json", {"score": 2})
    return w.commit(config={"lr": 0.1}, config_hash="abc", metrics={"score": 2},
                    upstream={"0-none": "x"})


@pytest.fixture
def store(tmp_path) -> Store:
    return Store(str(tmp_path / "store"))


def test_manifest_written_last(store, tmp_path, monkeypatch):
    order = record_writes(monkeypatch)  # every object path the store writes, in order
    w = store.writer(RUN, STAGE)
    w.begin()
    w.put_bytes("a.bin", b"a")
    assert store.manifest(RUN, STAGE) is None  # not done until commit
    w.put_json("b.json", {"b": 1})
    m = w.commit(config={}, config_hash="h", metrics={"x": 1})
    # the status record opens the stage and says done just before the manifest
    assert [Path(p).name for p in order] == [STATUS, "a.bin", "b.json", STATUS, MANIFEST]
    on_disk = store.manifest(RUN, STAGE)
    assert on_disk["_sha256"] == m["_sha256"]
    assert on_disk["files"]["a.bin"]["sha256"] == sha256_file(store.path(RUN, STAGE, "a.bin"))
    for key in ("config_hash", "upstream", "versions", "git_revision", "wall_time_s", "metrics"):
        assert key in on_disk
    # no temp files are left beside the outputs
    assert sorted(os.listdir(store.path(RUN, STAGE))) == ["a.bin", "b.json", MANIFEST, STATUS]


def test_read_back_verified(store, tmp_path):
    _write_stage(store, tmp_path)
    reader = store.require(RUN, STAGE)
    assert Path(reader.local_path("model.weights.h5")).read_bytes() == b"weights" * 100
    assert reader.read_json("metrics.json") == {"score": 2}
    assert reader.metrics == {"score": 2}


def test_flipped_byte_is_a_checksum_error_naming_the_file(store, tmp_path):
    _write_stage(store, tmp_path)
    p = Path(store.path(RUN, STAGE, "model.weights.h5"))
    data = bytearray(p.read_bytes())
    data[7] ^= 0x80
    p.write_bytes(bytes(data))
    reader = store.require(RUN, STAGE)
    with pytest.raises(ChecksumError, match=r"model\.weights\.h5 fails its checksum.*"
                                            r"1-initial-fit\.sh"):
        reader.local_path("model.weights.h5")
    assert reader.read_json("metrics.json") == {"score": 2}  # the other file still verifies


def test_file_listed_but_missing(store, tmp_path):
    _write_stage(store, tmp_path)
    os.remove(store.path(RUN, STAGE, "metrics.json"))
    with pytest.raises(StoreError, match="metrics.json is listed in the manifest but missing"):
        store.require(RUN, STAGE).local_path("metrics.json")


def test_corrupt_manifest(store, tmp_path):
    _write_stage(store, tmp_path)
    Path(store.path(RUN, STAGE, MANIFEST)).write_text("{truncated")
    with pytest.raises(ChecksumError, match="corrupt"):
        store.manifest(RUN, STAGE)


@pytest.mark.parametrize("bad", ["..", "a/../b", "../up", "a/b", "/abs", "", ".hidden",
                                 "x" * 65, "sp ace"])
def test_bad_run_ids_are_refused(store, bad):
    with pytest.raises(StoreError, match="RLPAD_RUN"):
        validate_run_id(bad)
    with pytest.raises(StoreError):
        store.path(bad, STAGE)
    with pytest.raises(StoreError):
        store.writer(bad, STAGE)


def test_good_run_ids(store):
    for ok in ("r1", "2024-06-01_quick", "a.b-c_d", "x" * 64):
        assert validate_run_id(ok) == ok
        assert store.path(ok, STAGE).startswith(store.root)


def test_missing_stage_names_its_script(store):
    with pytest.raises(MissingStageError, match=r"bash 1-initial-fit\.sh") as ei:
        store.require(RUN, "1-fit")
    assert "RLPAD_RUN" in str(ei.value)
    for stage, script in STAGES.items():
        with pytest.raises(MissingStageError, match=script.replace(".", r"\.")):
            store.require(RUN, stage)


def test_begin_withdraws_the_old_manifest(store, tmp_path):
    _write_stage(store, tmp_path)
    w = store.writer(RUN, STAGE)
    w.begin()  # a rerun that then dies before commit
    w.put_bytes("model.weights.h5", b"half-written rerun")
    assert store.manifest(RUN, STAGE) is None


def _ckpt(tmp_path: Path, name: str, content: bytes) -> str:
    d = tmp_path / name
    d.mkdir()
    (d / "model.weights.h5").write_bytes(content)
    (d / "state.json").write_text(json.dumps({"content": content.decode()}))
    return str(d)


def test_checkpoint_keeps_only_the_newest(store, tmp_path):
    assert store.load_checkpoint(RUN, STAGE, str(tmp_path / "none")) is None
    for step in (5, 10, 15):
        store.save_checkpoint(RUN, STAGE, _ckpt(tmp_path, f"c{step}", f"s{step}".encode()), step,
                              {"step_info": step})
    assert store._checkpoint_steps(RUN, STAGE) == [15]
    assert os.listdir(store.path(RUN, STAGE, "_ckpt")) == [f"{15:012d}"]
    marker = store.load_checkpoint(RUN, STAGE, str(tmp_path / "out"))
    assert marker["step"] == 15 and marker["info"] == {"step_info": 15}
    assert (tmp_path / "out" / "model.weights.h5").read_bytes() == b"s15"


def test_checkpoint_without_complete_marker_is_ignored(store, tmp_path):
    store.save_checkpoint(RUN, STAGE, _ckpt(tmp_path, "c1", b"good"), 100, {})
    # a newer save that was killed before COMPLETE.json
    half = Path(store.path(RUN, STAGE, f"_ckpt/{200:012d}"))
    half.mkdir(parents=True)
    (half / "model.weights.h5").write_bytes(b"half")
    marker = store.load_checkpoint(RUN, STAGE, str(tmp_path / "out"))
    assert marker["step"] == 100
    assert (tmp_path / "out" / "model.weights.h5").read_bytes() == b"good"
    # the next complete save replaces both
    store.save_checkpoint(RUN, STAGE, _ckpt(tmp_path, "c3", b"newer"), 300, {})
    assert store._checkpoint_steps(RUN, STAGE) == [300]


def test_damaged_checkpoint_is_refused(store, tmp_path):
    store.save_checkpoint(RUN, STAGE, _ckpt(tmp_path, "c1", b"good"), 1, {})
    Path(store.path(RUN, STAGE, f"_ckpt/{1:012d}/model.weights.h5")).write_bytes(b"evil")
    with pytest.raises(ChecksumError, match="model.weights.h5"):
        store.load_checkpoint(RUN, STAGE, str(tmp_path / "out"))


def test_clear_checkpoints(store, tmp_path):
    store.save_checkpoint(RUN, STAGE, _ckpt(tmp_path, "c1", b"x"), 1, {})
    store.clear_checkpoints(RUN, STAGE)
    assert store.load_checkpoint(RUN, STAGE, str(tmp_path / "out")) is None
    store.clear_checkpoints(RUN, STAGE)  # clearing nothing is fine


def test_empty_store_uri_names_the_setting():
    with pytest.raises(StoreError, match="RLPAD_STORE"):
        Store("")


def test_local_store_needs_no_probe(tmp_path):
    s = Store(str(tmp_path / "new" / "store"))
    assert s.is_local and os.path.isdir(s.root) and s.endpoint is None
    s.check()  # a no-op for a local folder


def test_status_record_running_progress_failed_done(store, monkeypatch):
    """running (heartbeat, the latest progress) -> failed with its one line; a stale heartbeat
    reads as stalled; a commit says done and the manifest wins."""
    import time

    monkeypatch.setenv("RLPAD_HEARTBEAT_S", "0.2")
    assert read_status(store, RUN, STAGE) is None
    w = store.writer(RUN, STAGE)
    w.begin()
    report_progress("1-fit", 40, 100, "steps", 20.0, 3.0, {"loss": 0.5, "bad": float("nan")})
    first = read_status(store, RUN, STAGE)["heartbeat"]
    time.sleep(0.6)
    rec = read_status(store, RUN, STAGE)
    assert rec["state"] == "running" and rec["heartbeat"] > first  # the thread beats
    assert rec["progress"] == {"label": "1-fit", "done": 40, "total": 100, "unit": "steps",
                               "rate": 20.0, "eta_s": 3.0, "info": {"loss": 0.5}}
    assert effective_state(rec, False) == "running"
    assert effective_state(rec, False, now=rec["heartbeat"] + 31) == "stalled"
    assert effective_state(rec, False, now=rec["heartbeat"] + 2, stall_after_s=1) == "stalled"
    fail_running(ValueError("eval.n_fake: too large\nsecond line"))
    rec = read_status(store, RUN, STAGE)
    assert rec["state"] == "failed" and rec["error"] == "eval.n_fake: too large"
    assert effective_state(rec, False) == "failed"
    w2 = store.writer(RUN, STAGE)
    w2.begin()
    w2.commit(config={}, config_hash="h", metrics={})
    rec = read_status(store, RUN, STAGE)
    assert rec["state"] == "done" and effective_state(rec, True) == "done"
    assert effective_state(rec, False) == "damaged"  # done, but its manifest is gone
    (Path(store.path(RUN, STAGE, STATUS))).write_text("{not json")
    assert read_status(store, RUN, STAGE)["state"] == "damaged"
