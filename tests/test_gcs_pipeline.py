"""The quick pipeline with its store on gs://, against an in-memory GCS emulator on 127.0.0.1.

Every stage runs through the CLI as a user would, with STORAGE_EMULATOR_HOST in its
environment: the killed stage 1 and stage 4 in subprocesses, the rest in this process. Stage 1
first meets a storage outage: the emulator is SIGKILLed while the stage runs; the stage must
fail (no manifest), and after the emulator restarts (empty: it keeps data in memory, so the
bucket is created again) a rerun completes. Stages 2-4 then run on top, Spark workers reading
the artifacts from the bucket. A missing bucket fails within seconds.
"""
from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass

import pytest

import gcs_emulator as gcs  # before anything imports gcsfs (sets GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT)
from conftest import RLPAD, ROOT, rlpad
from rlpad.store import STAGES, Store

BUCKET = "rlpad-pipe"
PREFIX = "runs"
RUN = "gcs1"
FIT = ["dqn.total_steps=3000", "dqn.learning_starts=500", "dqn.eval_every=1500",
       "dqn.eval_episodes=2", "dqn.final_eval_episodes=2", "dqn.checkpoint_every=500"]
TRANSFORM = ["transform.policy_steps=2000"]
GAN = ["gan.steps=100", "gan.checkpoint_every=50"]
EVAL = ["eval.n_real=[200]", "eval.n_fake=[0,500]", "eval.repetitions=1", "eval.refit_steps=300",
        "eval.episodes=2", "eval.n_envs=2", "eval.constrained_gan_steps=30", "eval.quality_reps=0"]


def _sets(overrides: list[str]) -> list[str]:
    return [a for ov in overrides for a in ("--set", ov)]


def _objects(emu: gcs.GcsEmulator, prefix: str) -> list[str]:
    """Object names under prefix, straight from the emulator's JSON API (no gcsfs caching)."""
    q = urllib.parse.urlencode({"prefix": prefix})
    with urllib.request.urlopen(f"{emu.url}/storage/v1/b/{BUCKET}/o?{q}", timeout=5) as r:
        return [o["name"] for o in json.load(r).get("items", [])]


@dataclass
class Outage:
    emu: gcs.GcsEmulator
    uri: str
    env: dict
    checkpoint_seen: str
    killed_fit: subprocess.CompletedProcess
    fail_s: float
    left_after_restart: list[str]
    rerun: subprocess.CompletedProcess


@pytest.fixture(scope="module")
def gcs_outage():
    if gcs.emulator_executable() is None:
        pytest.skip("gcp-storage-emulator is not installed")
    emu = gcs.GcsEmulator(bucket=BUCKET).start()
    try:
        env = {**os.environ, **emu.env(), "PYTHONUNBUFFERED": "1"}
        uri = f"gs://{BUCKET}/{PREFIX}"
        args = ["fit", "--store", uri, "--run", RUN, *_sets(FIT)]
        proc = subprocess.Popen(RLPAD + args, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            deadline = time.monotonic() + 240
            marker = []
            while not marker:
                assert proc.poll() is None, f"fit ended before its first checkpoint: {proc.communicate()}"
                assert time.monotonic() < deadline, "no stage-1 checkpoint in the bucket within 240 s"
                time.sleep(0.1)
                marker = [o for o in _objects(emu, f"{PREFIX}/{RUN}/1-fit/_ckpt/")
                          if o.endswith("/COMPLETE.json")]
            emu.kill()  # the storage goes away mid-stage
            t_kill = time.monotonic()
            out, err = proc.communicate(timeout=240)
            fail_s = time.monotonic() - t_kill
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, 9)
                proc.wait(30)
        killed = subprocess.CompletedProcess(args, proc.returncode, out, err)
        emu.stop()
        emu = gcs.GcsEmulator(bucket=BUCKET, port=emu.port).start()  # same endpoint, empty, new bucket
        left = _objects(emu, f"{PREFIX}/{RUN}/")
        with pytest.MonkeyPatch.context() as mp:  # for the CLI and Store(...) in this process
            for k, v in emu.env().items():
                mp.setenv(k, v)
            rerun = rlpad(*args)
            yield Outage(emu, uri, env, marker[0], killed, fail_s, left, rerun)
    finally:
        emu.stop()


def test_outage_mid_stage1_fails_cleanly_then_rerun_completes(gcs_outage):
    o = gcs_outage
    k = o.killed_fit
    assert k.returncode == 2, f"rc {k.returncode}\n{k.stdout[-2000:]}\n{k.stderr[-3000:]}"
    # The last word is the CLI's one-line error naming the object, the setting and the endpoint
    # (gcsfs logs its own retries above it).
    last = k.stderr.strip().splitlines()[-1]
    assert last.startswith("rlpad fit: error: store "), k.stderr[-3000:]
    assert f"gs://{BUCKET}/{PREFIX}/{RUN}/1-fit/" in last and "RLPAD_STORE" in last, last
    assert o.emu.url in last, last
    assert o.fail_s < 80  # one client retry cycle (~35 s); the failed status waits <= 5 s
    assert "eval return" not in k.stdout  # it never claimed success
    assert o.left_after_restart == []  # in-memory emulator: nothing survived, no manifest
    assert "eval return" in o.rerun.stdout
    st = Store(o.uri)
    m = st.manifest(RUN, "1-fit")
    assert m is not None and m["metrics"]["eval_episodes"] == 2
    for name in m["files"]:
        st.require(RUN, "1-fit").local_path(name)  # every file downloads and matches its sha256
    # A finished stage clears its checkpoints.
    assert not [o_ for o_ in _objects(o.emu, f"{PREFIX}/{RUN}/1-fit/_ckpt/")]


def test_quick_pipeline_on_gcs(gcs_outage):
    o = gcs_outage
    common = ["--store", o.uri, "--run", RUN]
    env = o.emu.env()
    # stages 2-3 in this process (the fixture put the emulator's variables in its environment);
    # stage 4 in a fresh one: Spark's workers take their environment from a JVM that another
    # test of this process may have started before the emulator existed
    rlpad("transform", *common, *_sets(TRANSFORM))
    rlpad("fit-gan", *common, *_sets(TRANSFORM + GAN))
    p = rlpad("eval", *common, "--master", "local[2]", *_sets(TRANSFORM + EVAL), env=env, timeout=600)
    st = Store(o.uri)
    for stage in STAGES:
        m = st.manifest(RUN, stage)
        assert m is not None, stage
        names = set(_objects(o.emu, f"{PREFIX}/{RUN}/{stage}/"))
        # Exactly the manifest's files and the manifest: no checkpoints or trial files left.
        assert names == {f"{PREFIX}/{RUN}/{stage}/{n}"  # + the stage's status record
                         for n in [*m["files"], "manifest.json", "status.json"]}
    ev = st.manifest(RUN, "4-eval")
    assert ev["metrics"]["n_trials"] == 3 and "sanity_recovery" in ev["metrics"]
    assert ev["metrics"]["table"].strip() in p.stdout
    r = st.require(RUN, "4-eval")
    with open(r.local_path("episodes.csv")) as f:
        lines = f.read().splitlines()
    assert lines[0].startswith("trial_id,agent,mode,n_real,n_fake") and len(lines) == 1 + 3 * 2
    assert not _objects(o.emu, f"{PREFIX}/{RUN}/4-eval/_trials/")
    # Rerunning a finished stage on the bucket skips it.
    again = rlpad("transform", *common, *_sets(TRANSFORM))
    assert "already complete" in again.stdout


def test_missing_bucket_fails_within_seconds(gcs_outage):
    t0 = time.monotonic()
    p = rlpad("fit", "--store", "gs://no-such-bucket/x", "--run", "r", check=False)
    took = time.monotonic() - t0
    assert p.returncode == 2, p.stdout + p.stderr
    assert "no-such-bucket" in p.stderr and "RLPAD_STORE" in p.stderr, p.stderr
    assert "does not exist" in p.stderr
    assert took < 20, f"took {took:.1f} s"
