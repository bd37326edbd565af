"""`rlpad export minari`: stage 1's replay (and stage 2's data) as Minari datasets, opened with
minari's own loader and checked against the real env: every episode, re-driven from its seed
with the exported actions, gives back the exported observations, rewards, terminations and
truncations (Atari frames included, exactly)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import rlpad

minari = pytest.importorskip("minari")


def _load(root, dataset_id, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    return minari.load_dataset(dataset_id)


def _redrive(cfg, ds, life_loss: bool) -> tuple[int, int, int]:
    """Replay every episode of `ds` in a fresh env of `cfg`: (episodes, env truncations,
    env terminations) seen; asserts each exported step is what the env produces."""
    from rlpad.envs import make_env

    env = make_env(cfg.env)
    n = truncs = terms = 0
    try:
        for ep in ds.iterate_episodes():
            assert ep.id is not None
            seed = next(iter(ds.storage.get_episode_metadata([ep.id])))["seed"]
            obs, info = env.reset(seed=int(seed))
            np.testing.assert_array_equal(ep.observations[0], obs)
            lives = info.get("lives", 0)
            last = len(ep.actions) - 1
            for t, a in enumerate(ep.actions):
                obs, r, term, trunc, info = env.step(int(a))
                np.testing.assert_array_equal(ep.observations[t + 1], obs, err_msg=f"ep {ep.id} step {t}")
                assert ep.rewards[t] == r
                assert bool(ep.terminations[t]) == term
                # the run's last episode was cut when recording stopped: truncated there
                assert bool(ep.truncations[t]) == (trunc or t == last and not term)
                if life_loss:
                    assert bool(ep.infos["life_lost"][t + 1]) == (info["lives"] < lives)
                lives = info.get("lives", 0)
                if term or trunc:
                    assert t == last, f"episode {ep.id} goes on after the env ended it"
                    truncs += trunc
                    terms += term
            n += 1
    finally:
        env.close()
    return n, truncs, terms


def test_cartpole_replay_and_policy_data_round_trip(quick_run, tmp_path, monkeypatch):
    from rlpad.config import load_config
    from rlpad.replay import ReplayMemory

    store, run = quick_run
    root = tmp_path / "minari"
    p = rlpad("export", "minari", "--store", store, "--run", run, "--out", str(root),
              "--dataset", "replay,policy,embedded")
    assert f"rlpad/{run}/replay-v0" in p.stdout
    fit_cfg = load_config("quick")
    ds = _load(root, f"rlpad/{run}/replay-v0", monkeypatch)
    rep = ReplayMemory.load(f"{store}/{run}/1-fit/replay.h5")
    assert ds.total_steps == rep.n_transitions()  # the whole run is held: every step exported
    n, truncs, terms = _redrive(fit_cfg, ds, life_loss=False)
    assert n == ds.total_episodes and terms > 0 and truncs > 0  # CartPole ends both ways at 500
    # a replay written before format v2 (one learning flag) exports the same env flags
    import shutil

    import h5py

    old = tmp_path / "v1.h5"
    shutil.copyfile(f"{store}/{run}/1-fit/replay.h5", old)
    with h5py.File(old, "a") as f:
        for name in ("terminations", "truncations", "life_losses"):
            del f[name]
        f.attrs["version"] = 1
    v1 = ReplayMemory.load(str(old))
    for name in ("terminations", "truncations", "life_losses"):
        np.testing.assert_array_equal(getattr(v1, name), getattr(rep, name), err_msg=name)
    env = ds.recover_environment()  # the env spec travelled: the env is rebuilt from it
    assert env.spec.id == "CartPole-v1"
    env.close()

    pol = _load(root, f"rlpad/{run}/policy-v0", monkeypatch)
    n, _, _ = _redrive(fit_cfg, pol, life_loss=False)
    m2 = json.loads(open(f"{store}/{run}/2-transform/manifest.json").read())["metrics"]
    assert pol.total_steps == m2["policy_steps"] and n == pol.total_episodes

    emb = _load(root, f"rlpad/{run}/embedded-v0", monkeypatch)
    assert emb.observation_space.shape == (m2["embed_dim"],)
    assert emb.total_steps == m2["n_transitions"]
    ep = next(emb.iterate_episodes())
    pe = next(pol.iterate_episodes())
    np.testing.assert_array_equal(ep.actions, pe.actions)
    np.testing.assert_array_equal(ep.rewards, pe.rewards)


def test_export_keeps_an_existing_dataset_unless_forced(quick_run, tmp_path):
    store, run = quick_run
    root = tmp_path / "minari"
    args = ["export", "minari", "--store", store, "--run", run, "--out", str(root)]
    rlpad(*args)
    meta = root / "rlpad" / run / "replay-v0" / "data" / "metadata.json"
    before = meta.read_bytes()
    p = rlpad(*args, check=False)
    assert p.returncode == 2 and "exists; pass --force" in p.stderr
    assert meta.read_bytes() == before
    rlpad(*args, "--force")
    assert json.loads(meta.read_text())["total_steps"] == json.loads(before)["total_steps"]
    assert [q.name for q in (root / "rlpad" / run).iterdir()] == ["replay-v0"]  # no leftovers
    p = rlpad(*args, "--agent", "7", check=False)
    assert p.returncode == 2 and "--agent 7 is not an agent of this run" in p.stderr


BREAKOUT = ["dqn.total_steps=300", "dqn.learning_starts=100", "dqn.buffer_size=1000",
            "dqn.eval_every=300", "dqn.eval_episodes=1", "dqn.final_eval_episodes=1",
            "env.max_episode_steps=120", "dqn.checkpoint_every=300"]


def test_breakout_frames_round_trip_exactly(tmp_path, monkeypatch):
    """A real-ROM Breakout replay: 84x84 uint8 frames come back bit for bit (stored raw, not
    as minari's lossy JPEG), env action ids (the agent plays 3 of the ROM's 4), lost lives."""
    from rlpad.config import load_config

    store, root = tmp_path / "store", tmp_path / "minari"
    sets = [a for s in BREAKOUT for a in ("--set", s)]
    rlpad("fit", "--store", str(store), "--run", "b", "--profile", "breakout", *sets)
    rlpad("export", "minari", "--store", str(store), "--run", "b", "--profile", "breakout",
          *sets, "--out", str(root))
    ds = _load(root, "rlpad/b/replay-v0", monkeypatch)
    meta = json.loads((root / "rlpad" / "b" / "replay-v0" / "data" / "metadata.json").read_text())
    assert meta["jpeg_encoding"] is False
    assert ds.observation_space.shape == (84, 84) and ds.observation_space.dtype == np.uint8
    assert ds.action_space.n == 4 and ds.total_steps == 300
    acts = np.concatenate([ep.actions for ep in ds.iterate_episodes()])
    assert set(acts.tolist()) <= {1, 2, 3}
    n, truncs, _ = _redrive(load_config("breakout", BREAKOUT), ds, life_loss=True)
    assert n == ds.total_episodes >= 2 and truncs >= 1  # the 120-step limit truncates
    lost = np.concatenate([ep.infos["life_lost"] for ep in ds.iterate_episodes()])
    assert lost.any()


def test_ids_are_minaris_and_a_stale_stage2_is_refused(quick_run, tmp_path):
    import shutil

    from rlpad.stages.export import dataset_id

    assert dataset_id("exp.1", 3, 2, "replay") == "rlpad/exp_1/seed3/replay-v0"
    assert dataset_id("exp1", 1, 1, "policy") == "rlpad/exp1/policy-v0"
    store, run = quick_run
    copy = tmp_path / "store"
    shutil.copytree(f"{store}/{run}", copy / run)
    m = copy / run / "2-transform" / "manifest.json"
    man = json.loads(m.read_text())
    man["upstream"] = {k: "0" * 64 for k in man["upstream"]}  # stage 2 of another stage 1
    m.write_text(json.dumps(man))
    p = rlpad("export", "minari", "--store", str(copy), "--run", run, "--out",
              str(tmp_path / "minari"), "--dataset", "embedded", check=False)
    assert p.returncode == 2 and "was made from another stage 1" in p.stderr
    assert not (tmp_path / "minari" / "rlpad").exists()  # nothing written
