"""Stage 1 end to end: the `rlpad fit` CLI on real environments, real networks, a real store.

Covers: outputs + manifest, skip / changed-config refusal / --force, kill -9 then resume,
same-seed determinism, checksum errors naming the file, run-id refusal, the Breakout
profile on the real ROM and Nature CNN, and (slow) the quick profile's acceptance score.
"""
from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import rlpad
from rlpad.config import load_config
from rlpad.replay import ReplayMemory
from rlpad.store import ChecksumError, Store, sha256_file

STAGE = "1-fit"
_BIN = Path(sys.executable).parent / "rlpad"
RLPAD = [str(_BIN)] if _BIN.exists() else [sys.executable, "-m", "rlpad.cli"]
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": "",
       "PYTHONUNBUFFERED": "1"}

# A few seconds of CartPole: two periodic evals, one mid-run checkpoint.
QUICK_TINY = ["dqn.total_steps=600", "dqn.learning_starts=100", "dqn.train_freq=50",
              "dqn.gradient_steps=5", "dqn.eval_every=300", "dqn.eval_episodes=2",
              "dqn.final_eval_episodes=3", "dqn.checkpoint_every=300",
              "dqn.stop_at_eval_return=0"]
# Long enough (a train step every agent step) that a kill lands mid-run; checkpoints (every 400)
# fall between evaluations (every 250), so a checkpoint holds losses not yet logged.
QUICK_KILL = ["dqn.total_steps=3000", "dqn.learning_starts=100", "dqn.train_freq=1",
              "dqn.gradient_steps=1", "dqn.eval_every=250", "dqn.eval_episodes=1",
              "dqn.final_eval_episodes=2", "dqn.checkpoint_every=400", "dqn.buffer_size=10000",
              "dqn.stop_at_eval_return=0"]
BREAKOUT_TINY = ["dqn.total_steps=400", "dqn.learning_starts=100", "dqn.buffer_size=1000",
                 "dqn.eval_every=400", "dqn.eval_episodes=1", "dqn.final_eval_episodes=1",
                 "env.max_episode_steps=150", "dqn.checkpoint_every=200"]


def _sets(overrides: list[str]) -> list[str]:
    return [a for ov in overrides for a in ("--set", ov)]


def rlpad_fit(store: Path, run: str, overrides: list[str], *extra: str, profile: str = "quick",
              fresh: bool = False) -> subprocess.CompletedProcess:
    """`rlpad fit` in this process (a new interpreter costs a TensorFlow import, ~6 s), or with
    `fresh` in a new one. Runs compared bit for bit with a killed run need `fresh`: a process
    whose TensorFlow is already running keeps the thread pools it started with, and other pools
    sum in another order."""
    if not fresh:
        return rlpad("fit", "--store", str(store), "--run", run, "--profile", profile,
                     *_sets(overrides), *extra, check=False)
    cmd = [*RLPAD, "fit", "--store", str(store), "--run", run, "--profile", profile,
           *_sets(overrides), *extra]
    return subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=600)


def start_fit(store: Path, run: str, overrides: list[str], *extra: str,
              profile: str = "quick") -> subprocess.Popen:
    """`rlpad_fit(..., fresh=True)` started in the background; `finish` awaits it. The
    uninterrupted reference of a kill test runs beside the killed run it is compared with: each
    is mostly one Python thread, and the machine has two cores."""
    cmd = [*RLPAD, "fit", "--store", str(store), "--run", run, "--profile", profile,
           *_sets(overrides), *extra]
    out, err = tempfile.TemporaryFile("w+"), tempfile.TemporaryFile("w+")  # a pipe could fill
    proc = subprocess.Popen(cmd, stdout=out, stderr=err, text=True, env=ENV)
    proc.logs = (out, err)  # type: ignore[attr-defined]
    return proc


def finish(proc: subprocess.Popen, timeout: float = 600) -> subprocess.CompletedProcess:
    try:
        rc = proc.wait(timeout)
    finally:
        stop(proc)
    texts = []
    for f in proc.logs:  # type: ignore[attr-defined]
        f.seek(0)
        texts.append(f.read())
        f.close()
    return subprocess.CompletedProcess(proc.args, rc, *texts)


def stop(proc: subprocess.Popen) -> None:
    """Kill a background fit that is still running (a test failed before `finish`)."""
    if proc.poll() is None:
        proc.kill()
        proc.wait(30)


def kill_beside_reference(ref: Path, killed: Path, run: str, overrides: list[str], log_path: Path,
                          *, failpoints: str, profile: str = "quick") -> subprocess.CompletedProcess:
    """The uninterrupted run into `ref` and the run killed at `failpoints` into `killed`, side
    by side; returns the uninterrupted run's output once both ended."""
    reference = start_fit(ref, run, overrides, profile=profile)
    try:
        _kill_run(killed, run, overrides, log_path, failpoints=failpoints, profile=profile)
    except BaseException:
        stop(reference)
        raise
    return _ok(finish(reference))


def _ok(p: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert p.returncode == 0, f"exit {p.returncode}\nstdout:\n{p.stdout[-3000:]}\nstderr:\n{p.stderr[-3000:]}"
    return p


def _manifest(store: Path, run: str) -> dict:
    return json.loads((store / run / STAGE / "manifest.json").read_text())


def _weights_hash(model) -> str:
    h = hashlib.sha256()
    for w in model.get_weights():
        h.update(np.ascontiguousarray(w).tobytes())
    return h.hexdigest()


@pytest.fixture(scope="session")
def quick_tiny(tmp_path_factory):
    """One tiny quick-profile fit shared by the tests that only read its outputs."""
    store = tmp_path_factory.mktemp("quick-tiny") / "store"
    p = _ok(rlpad_fit(store, "r", QUICK_TINY))
    return store, "r", p


# ---- (a) outputs, manifest, skip, changed config ------------------------------------------------
def test_fit_outputs_and_manifest(quick_tiny):
    store, run, p = quick_tiny
    d = store / run / STAGE
    m = _manifest(store, run)
    files = m["files"]
    tb = [n for n in files if n.startswith("tb/")]
    assert {"qnet.weights.h5", "replay.h5", "curve.csv", "curve.png"} <= set(files)
    assert tb and all("tfevents" in n for n in tb)
    for name, info in files.items():  # every file is listed with its true sha256 and size
        assert info["sha256"] == sha256_file(d / name), name
        assert info["bytes"] == (d / name).stat().st_size, name
    # the config and its hash are the ones asked for
    cfg = load_config("quick", QUICK_TINY)
    assert m["config"] == cfg.to_dict()
    assert m["config_hash"] == cfg.section_hash("env", "qnet", "dqn")
    assert m["stage"] == STAGE and m["run"] == run and m["wall_time_s"] > 0
    assert "tensorflow-cpu" in m["versions"] or "tensorflow" in m["versions"]
    mt = m["metrics"]
    assert isinstance(mt["eval_return_mean"], float) and isinstance(mt["eval_return_std"], float)
    assert mt["eval_episodes"] == 3 and len(mt["eval_returns"]) == 3
    assert mt["eval_return_mean"] == pytest.approx(np.mean(mt["eval_returns"]))
    assert mt["agent_steps"] == 600 and m["run_info"]["resumed_from_step"] == 0
    assert (mt["env_id"], mt["n_actions"], mt["embed_dim"]) == ("CartPole-v1", 2, 64)
    # curve.csv: one row per periodic eval
    with open(d / "curve.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == [300, 600]
    assert {"eval_return_mean", "eval_return_std", "td_loss", "epsilon"} <= set(rows[0])
    assert (d / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # TensorBoard events hold the eval curve
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    ea = EventAccumulator(str(d / "tb"))
    ea.Reload()
    tags = set(ea.Tags()["tensors"]) | set(ea.Tags()["scalars"])
    assert {"charts/eval_return", "charts/episodic_return"} <= tags
    # the replay is the whole run, readable; checkpoints are gone once the stage is done
    rep = ReplayMemory.load(str(d / "replay.h5"))
    assert rep.size == mt["replay_rows"] and rep.n_transitions() == mt["replay_transitions"] == 600
    assert rep.frame_shape == (4,) and rep.stack == 1
    assert not (d / "_ckpt").exists()


def test_rerun_skips_and_keeps_manifest(quick_tiny, tmp_path):
    store, run, _ = quick_tiny
    before = (store / run / STAGE / "manifest.json").read_bytes()
    p = _ok(rlpad_fit(store, run, QUICK_TINY))
    assert "skipping" in p.stdout and "resuming" not in p.stdout
    assert (store / run / STAGE / "manifest.json").read_bytes() == before


def test_changed_config_is_refused_then_forced(quick_tiny, tmp_path):
    src, run, _ = quick_tiny
    store = tmp_path / "store"
    shutil.copytree(src, store)
    before = (store / run / STAGE / "manifest.json").read_bytes()
    changed = QUICK_TINY + ["dqn.total_steps=300"]
    p = rlpad_fit(store, run, changed)
    assert p.returncode == 2
    assert "--force" in p.stderr and "another config" in p.stderr
    assert (store / run / STAGE / "manifest.json").read_bytes() == before
    # a change outside stage 1's sections does not count
    p = _ok(rlpad_fit(store, run, QUICK_TINY + ["gan.steps=7"]))
    assert "skipping" in p.stdout
    # --force redoes the stage with the new config
    p = _ok(rlpad_fit(store, run, changed, "--force"))
    assert "skipping" not in p.stdout
    m = _manifest(store, run)
    assert m["metrics"]["agent_steps"] == 300
    assert m["config_hash"] == load_config("quick", changed).section_hash("env", "qnet", "dqn")
    assert (store / run / STAGE / "manifest.json").read_bytes() != before


# ---- (b) kill -9 mid-run, then resume ------------------------------------------------------------
def _complete_ckpts(stage_dir: Path) -> list[int]:
    d = stage_dir / "_ckpt"
    if not d.exists():
        return []
    return sorted(int(p.name) for p in d.iterdir()
                  if p.name.isdigit() and (p / "COMPLETE.json").exists())


def _kill_run(store: Path, run: str, overrides: list[str], log_path: Path, *,
              failpoints: str, profile: str = "quick") -> None:
    """Start a fit that SIGKILLs itself at a failpoint (RLPAD_FAILPOINTS, rlpad/failpoints.py)."""
    stage_dir = store / run / STAGE
    cmd = [*RLPAD, "fit", "--store", str(store), "--run", run, "--profile", profile,
           *_sets(overrides)]
    with open(log_path, "w") as log:
        proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, timeout=300,
                              env={**ENV, "RLPAD_FAILPOINTS": failpoints})
    assert proc.returncode == -signal.SIGKILL, log_path.read_text()[-2000:]
    assert not (stage_dir / "manifest.json").exists(), "the run finished before the kill"


def _outputs(store: Path, run: str) -> dict:
    """What an uninterrupted and a resumed run must share: file hashes of the weights and
    the replay, the replay's arrays, the curve without its wall-clock column, the metrics."""
    d = store / run / STAGE
    with open(d / "curve.csv") as f:
        curve = [{k: v for k, v in r.items() if k != "steps_per_s"} for r in csv.DictReader(f)]
    rep = ReplayMemory.load(str(d / "replay.h5"))
    arrays = {n: hashlib.sha256(np.ascontiguousarray(getattr(rep, n)[:rep.size]).tobytes()).hexdigest()
              for n in ("frames", "actions", "rewards", "terminals", "has_next", "pos")}
    return {"qnet": sha256_file(d / "qnet.weights.h5"), "replay_file": sha256_file(d / "replay.h5"),
            "replay": arrays, "curve": curve, "metrics": _manifest(store, run)["metrics"]}


# Kill points in turn on one run (each process counts its own hits): each rerun resumes from the
# newest complete checkpoint and is killed again further on, the last one finishes. Points:
# mid-episode after the first checkpoint (step 450), inside the rerun's 3rd evaluation (1,000),
# halfway through its 2nd checkpoint write (1,600: the half-written one must be passed over),
# mid-episode 1,111 steps after resuming (2,311).
KILL_POINTS = ["1-fit.step=450", "1-fit.eval=3", "checkpoint.write=2", "1-fit.step=1111"]


def test_killed_at_each_point_in_turn_resumes_exactly(tmp_path):
    """Killed anywhere (again and again), each rerun resumes from its newest complete checkpoint
    and the last ends bit-identical to the run never killed."""
    reference = start_fit(tmp_path / "ref", "ref", QUICK_KILL)
    try:
        store, run = tmp_path / "store", "killed"
        stage_dir = store / run / STAGE
        resumed: list[int] = []
        pre_kill = tmp_path / "pre-kill-replay.h5"
        for i, failpoints in enumerate(KILL_POINTS):
            log = tmp_path / f"kill{i}.log"
            _kill_run(store, run, QUICK_KILL, log, failpoints=failpoints)
            if i:  # the killed rerun resumed where the kill before it left off
                assert f"resuming from checkpoint at step {resumed[-1]:,}" in log.read_text(), failpoints
            n = _complete_ckpts(stage_dir)[-1]
            assert (resumed[-1] if resumed else 0) < n < 3000, (failpoints, resumed, n)
            if failpoints.startswith("checkpoint.write"):  # the half-written one is there, passed over
                assert [p for p in (stage_dir / "_ckpt").iterdir() if p.name.isdigit() and int(p.name) > n]
            marker = json.loads((stage_dir / "_ckpt" / f"{n:012d}" / "COMPLETE.json").read_text())
            assert marker["step"] == n
            resumed.append(n)
            if not i:
                shutil.copyfile(stage_dir / "_ckpt" / f"{n:012d}" / "replay.h5", pre_kill)
    except BaseException:
        stop(reference)
        raise
    _ok(finish(reference))  # long done: it ran beside the first kills

    p = _ok(rlpad_fit(store, run, QUICK_KILL, fresh=True))
    n = resumed[-1]
    assert f"resuming from checkpoint at step {n:,}" in p.stdout, p.stdout[-2000:]
    m = _manifest(store, run)
    assert m["run_info"]["resumed_from_step"] == n > 0
    assert m["metrics"]["agent_steps"] == 3000  # the step counter went on from n, not from 0
    # the replay kept the rows written before the first kill: all of them, unchanged, first
    pre = ReplayMemory.load(str(pre_kill))
    post = ReplayMemory.load(str(stage_dir / "replay.h5"))
    assert pre.size > resumed[0] and post.size > n and post.n_transitions() == 3000
    k = pre.size  # the newest row's transition came after the checkpoint
    for name in ("frames", "pos"):
        np.testing.assert_array_equal(getattr(post, name)[:k], getattr(pre, name)[:k], err_msg=name)
    for name in ("actions", "rewards", "terminals", "has_next"):
        np.testing.assert_array_equal(getattr(post, name)[:k - 1], getattr(pre, name)[:k - 1],
                                      err_msg=name)
    assert not (stage_dir / "_ckpt").exists()
    # and everything equals the uninterrupted run's
    got, want = _outputs(store, run), _outputs(tmp_path / "ref", "ref")
    assert [int(r["step"]) for r in got["curve"]] == list(range(250, 3001, 250))
    for key in ("curve", "metrics", "replay", "replay_file", "qnet"):
        assert got[key] == want[key], key


# ---- (c) determinism ----------------------------------------------------------------------------
class NoCkpt:
    def save(self, local_dir: str, step: int, info: dict) -> None:
        pass

    def load(self, local_dir: str) -> dict | None:
        return None


DET = ["dqn.total_steps=500", "dqn.learning_starts=100", "dqn.train_freq=10",
       "dqn.gradient_steps=4", "dqn.eval_every=250", "dqn.eval_episodes=2",
       "dqn.final_eval_episodes=2", "dqn.target_update=50", "dqn.stop_at_eval_return=0"]


def _train(tmp_path: Path, seed: int) -> tuple[str, str, dict, list[dict]]:
    from rlpad.dqn import train_dqn
    from rlpad.envs import env_spec

    cfg = load_config("quick", DET + [f"seed={seed}"])
    work = tmp_path / f"work-{seed}-{time.monotonic_ns()}"
    work.mkdir()
    res = train_dqn(cfg, env_spec(cfg.env), str(work), NoCkpt(), log=lambda s: None)
    replay_hash = hashlib.sha256(res.replay.frames[:res.replay.size].tobytes()
                                 + res.replay.actions[:res.replay.size].tobytes()).hexdigest()
    return _weights_hash(res.agent.online.model), replay_hash, res.metrics, res.curve


def test_same_seed_same_weights(tmp_path):
    w1, r1, m1, c1 = _train(tmp_path, 1)
    w2, r2, m2, c2 = _train(tmp_path, 1)
    w3, r3, _, _ = _train(tmp_path, 2)
    assert m1["agent_steps"] == 500
    assert all(np.isfinite(row["td_loss"]) for row in c1)  # it did learn between evals
    assert [row["td_loss"] for row in c1] == [row["td_loss"] for row in c2]
    assert w1 == w2 and r1 == r2
    assert m1["eval_returns"] == m2["eval_returns"]
    assert w3 != w1 and r3 != r1


def test_lr_decays_linearly_to_lr_final(tmp_path):
    from rlpad.dqn import train_dqn
    from rlpad.envs import env_spec

    cfg = load_config("quick", DET + ["dqn.lr_final=0.25"])
    res = train_dqn(cfg, env_spec(cfg.env), str(tmp_path), NoCkpt(), log=lambda s: None)
    # the last train burst is at step 500 = total_steps: lr x (1 + (0.25 - 1) x 500 / 500)
    assert float(res.agent.opt.lr.numpy()) == pytest.approx(0.25 * cfg.dqn.lr, rel=1e-6)


# ---- (d) corrupted artifacts ----------------------------------------------------------------
@pytest.mark.parametrize("name", ["qnet.weights.h5", "replay.h5"])
def test_flipped_byte_is_a_checksum_error(quick_tiny, tmp_path, name):
    src, run, _ = quick_tiny
    store = tmp_path / "store"
    shutil.copytree(src, store)
    reader = Store(str(store)).require(run, STAGE)
    reader.local_path(name)  # intact: fine
    f = store / run / STAGE / name
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0x01
    f.write_bytes(bytes(data))
    with pytest.raises(ChecksumError) as e:
        reader.local_path(name)
    assert name in str(e.value) and "--force" in str(e.value)
    # the other files still verify
    other = "replay.h5" if name == "qnet.weights.h5" else "qnet.weights.h5"
    reader.local_path(other)


# ---- (e) run ids ------------------------------------------------------------------------------
def test_run_id_with_dotdot_is_refused(tmp_path):
    store = tmp_path / "a" / "store"
    p = rlpad_fit(store, "../x", QUICK_TINY)
    assert p.returncode == 2
    assert "run id '../x'" in p.stderr and "not allowed" in p.stderr
    assert not (tmp_path / "a" / "x").exists()
    assert "Traceback" not in p.stderr


# ---- (f) Breakout: real ROM, real CNN, replay through HDF5 ---------------------------------------
@pytest.fixture(scope="module")
def breakout_tiny(tmp_path_factory):
    """(store, its run's output, a store whose run was killed mid-episode at step 300): the
    uninterrupted run and the killed one side by side."""
    base = tmp_path_factory.mktemp("breakout")
    store, killed = base / "store", base / "killed"
    p = kill_beside_reference(store, killed, "b", BREAKOUT_TINY, base / "first.log",
                              failpoints="1-fit.step=300", profile="breakout")
    return store, p, killed


def test_breakout_tiny_end_to_end(breakout_tiny):
    from rlpad.seeding import episode_seed
    from rlpad.envs import FrameStack, env_spec, make_env
    from rlpad.qnet import build_qnet

    store, p, _ = breakout_tiny
    assert "eval return" in p.stdout
    d = store / "b" / STAGE
    m = _manifest(store, "b")
    mt = m["metrics"]
    assert (mt["env_id"], mt["n_actions"], mt["embed_dim"]) == ("ALE/Breakout-v5", 3, 512)
    assert mt["agent_steps"] == 400 and mt["eval_episodes"] == 1
    cfg = load_config("breakout", BREAKOUT_TINY)
    spec = env_spec(cfg.env)
    assert spec.obs_shape == (4, 84, 84) and spec.action_ids == (1, 2, 3)

    # the shipped weights are a Nature CNN: conv 8x8x4->32, 4x4->64, 3x3->64, dense 3136->512->3
    net = build_qnet(cfg.qnet, spec.obs_shape, spec.n_actions)
    net.model.load_weights(str(d / "qnet.weights.h5"))
    shapes = [tuple(w.shape) for w in net.model.get_weights()]
    assert shapes == [(8, 8, 4, 32), (32,), (4, 4, 32, 64), (64,), (3, 3, 64, 64), (64,),
                      (3136, 512), (512,), (512, 3), (3,)]

    rep = ReplayMemory.load(str(d / "replay.h5"))
    assert rep.frame_shape == (84, 84) and rep.frames.dtype == np.uint8 and rep.stack == 4
    assert rep.size == mt["replay_rows"] and rep.n_transitions() == 400
    assert rep.size < rep.capacity  # the whole run is held: row 0 is the first reset

    # Re-drive a fresh env with the replay's actions: every frame, reward and stacked state the
    # replay holds is what the real ROM produces (episode k is reset on episode_seed(seed, k)).
    env = make_env(cfg.env)
    fs = FrameStack(spec)
    rows = set(rep.transition_rows().tolist())
    n_episodes, checked = 0, 0
    try:
        for i in range(rep.size):
            if rep.pos[i] == 0:
                obs, info = env.reset(seed=episode_seed(cfg.seed, n_episodes))
                state = fs.reset(obs)
                lives = info["lives"]
                n_episodes += 1
            np.testing.assert_array_equal(rep.frames[i], obs, err_msg=f"frame of row {i}")
            if i in rows:
                np.testing.assert_array_equal(rep.states(np.array([i]))[0], state)
                checked += 1
            if rep.has_next[i]:
                obs, r, term, trunc, info = env.step(spec.action_ids[int(rep.actions[i])])
                assert rep.rewards[i] == r
                assert bool(rep.terminals[i]) == bool(term or info["lives"] < lives)
                lives = info["lives"]
                state = fs.push(obs)
                assert rep.pos[i + 1] == rep.pos[i] + 1
                if term or trunc:
                    assert i + 1 == rep.size - 1 or rep.pos[i + 2] == 0
    finally:
        env.close()
    assert checked == 400 and n_episodes >= 2  # max_episode_steps=150 agent steps: several episodes


def test_breakout_kill9_mid_episode_resumes_exactly(breakout_tiny):
    """The Atari profile: killed mid-episode (step 300; checkpoint at 200), the rerun
    replays the episode under way on the real ROM and ends bit-identical."""
    ref_store, _, store = breakout_tiny  # killed by the fixture, beside the reference run
    assert _complete_ckpts(store / "b" / STAGE) == [200]
    p = _ok(rlpad_fit(store, "b", BREAKOUT_TINY, profile="breakout", fresh=True))
    assert "resuming from checkpoint at step 200" in p.stdout
    assert _manifest(store, "b")["run_info"]["resumed_from_step"] == 200
    got, want = _outputs(store, "b"), _outputs(ref_store, "b")
    for key in ("curve", "metrics", "replay", "replay_file", "qnet"):
        assert got[key] == want[key], key


# ---- (g) acceptance: the quick profile solves CartPole ------------------------------------------
def test_quick_profile_solves_cartpole(quick_run):
    """Acceptance 1: the quick profile, fixed seed, >= 475 over 20 evaluation episodes (the
    session's shared run is that profile's stage 1 as shipped, through the CLI)."""
    store, run = quick_run
    mt = _manifest(Path(store), run)["metrics"]
    print(f"quick profile stage 1: eval return {mt['eval_return_mean']:.1f} "
          f"± {mt['eval_return_std']:.1f} over {mt['eval_episodes']} episodes")
    assert mt["eval_episodes"] == 20
    assert mt["eval_return_mean"] >= 475, mt
