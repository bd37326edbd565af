"""PPO (learners/ppo.py): the joystick mapping, GAE by hand, stage 1 through the CLI (and the
refusal of stages 2-4), `rlpad play` of a PPO agent, and a killed run resumed exactly."""
from __future__ import annotations

import csv
import hashlib
import json
import math

import numpy as np
import pytest

from rlpad.config import ConfigError, load_config
from rlpad.learners.joystick import DIRECTIONS, joystick_table, to_direction

from conftest import rlpad
from test_fit import _complete_ckpts, _ok, kill_beside_reference, rlpad_fit

TINY = ["learner.kind=ppo", "ppo.total_steps=1024", "ppo.n_envs=4", "ppo.n_steps=32",
        "ppo.epochs=2", "ppo.minibatches=2", "dqn.eval_every=256", "dqn.eval_episodes=2",
        "dqn.final_eval_episodes=2", "dqn.checkpoint_every=256"]


@pytest.mark.parametrize("deg, want", [(0, "RIGHT"), (22, "RIGHT"), (23, "UPRIGHT"), (45, "UPRIGHT"),
                                       (90, "UP"), (135, "UPLEFT"), (180, "LEFT"), (-135, "DOWNLEFT"),
                                       (-90, "DOWN"), (-45, "DOWNRIGHT"), (-23, "DOWNRIGHT"),
                                       (337, "DOWNRIGHT"), (338, "RIGHT")])
def test_joystick_angles_map_to_the_nearest_direction(deg, want):
    x, y = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    assert to_direction(x, y, 0.5) == want
    assert to_direction(0.4 * x, 0.4 * y, 0.5) == "NOOP"  # inside the dead zone


def test_joystick_table_on_the_mspacman_rom_and_refused_elsewhere():
    from rlpad.envs import env_spec, make_env

    cfg = load_config("mspacman")
    spec = env_spec(cfg.env)
    table = joystick_table(cfg.env, spec)
    names = make_env(cfg.env).unwrapped.get_action_meanings()
    assert set(table) == set(DIRECTIONS)
    assert all(names[spec.action_ids[i]] == d for d, i in table.items())
    br = load_config("breakout")
    with pytest.raises(ConfigError, match="ppo.head"):
        joystick_table(br.env, env_spec(br.env))


def test_gae_matches_a_direct_sum():
    from rlpad.learners.ppo import gae

    rng = np.random.default_rng(0)
    T, n, gamma, lam = 7, 3, 0.9, 0.8
    r, v = rng.normal(size=(T, n)).astype("float32"), rng.normal(size=(T, n)).astype("float32")
    done = (rng.random((T, n)) < 0.25).astype("float32")
    last = rng.normal(size=n).astype("float32")
    adv, ret = gae(r, v, done, last, gamma, lam)
    for i in range(n):
        for t in range(T):  # sum_k (gamma lam)^k delta_{t+k}, cut at the episode's end
            total, k = 0.0, t
            while True:
                nxt = last[i] if k == T - 1 else v[k + 1, i]
                delta = r[k, i] + gamma * nxt * (1 - done[k, i]) - v[k, i]
                total += (gamma * lam) ** (k - t) * delta
                if done[k, i] or k == T - 1:
                    break
                k += 1
            assert adv[t, i] == pytest.approx(total, abs=1e-5)
    np.testing.assert_allclose(ret, adv + v)


def _hash(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def _curve(d):
    with open(d / "curve.csv") as f:
        return [{k: v for k, v in r.items() if k != "steps_per_s"} for r in csv.DictReader(f)]


def test_ppo_stage1_play_and_stages_2_to_4_refuse_it(tmp_path):
    store = tmp_path / "store"
    out = _ok(rlpad_fit(store, "p", TINY)).stdout
    d = store / "p" / "1-fit"
    man = json.loads((d / "manifest.json").read_text())
    assert man["metrics"]["learner"] == "ppo" and man["metrics"]["agent_steps"] == 1024
    assert (d / "policy.weights.h5").exists() and (d / "rollout.h5").exists()
    assert not (d / "qnet.weights.h5").exists() and "eval return" in out
    assert [int(r["step"]) for r in _curve(d)] == [256, 512, 768, 1024]
    import h5py
    with h5py.File(d / "rollout.h5") as f:
        assert f["obs"].shape == (32, 4, 4) and f["actions"].shape == (32, 4)
    p = rlpad("transform", "--store", str(store), "--run", "p", *[a for s in TINY for a in ("--set", s)],
              check=False)
    assert p.returncode != 0 and "learner.kind" in p.stderr and "'ppo'" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1 and not (store / "p" / "2-transform").exists()
    play = rlpad("play", "--store", str(store), "--run", "p", "--episodes", "1", "--max-steps", "30",
                 *[a for s in TINY for a in ("--set", s)])
    assert "episode 0" in play.stdout and (store / "p" / "play" / "episode-0.gif").exists()


def test_ppo_killed_mid_run_resumes_exactly(tmp_path):
    over = TINY + ["ppo.total_steps=1024"]
    ref = tmp_path / "ref"
    store = tmp_path / "killed"
    kill_beside_reference(ref, store, "r", over, tmp_path / "first.log", failpoints="1-fit.step=180")
    n = _complete_ckpts(store / "r" / "1-fit")[-1]
    assert 0 < n < 1024
    p = _ok(rlpad_fit(store, "r", over, fresh=True))
    assert f"resuming from checkpoint at step {n:,}" in p.stdout
    a, b = store / "r" / "1-fit", ref / "r" / "1-fit"
    assert _hash(a / "policy.weights.h5") == _hash(b / "policy.weights.h5")
    assert _hash(a / "rollout.h5") == _hash(b / "rollout.h5")
    assert _curve(a) == _curve(b)
    ma, mb = (json.loads((x / "manifest.json").read_text())["metrics"] for x in (a, b))
    assert ma == mb


def test_ppo_joystick_stage1_tiny_on_the_mspacman_rom(tmp_path):
    over = TINY + ["ppo.head=joystick", "env.max_episode_steps=60", "ppo.total_steps=256",
                   "dqn.eval_episodes=1", "dqn.final_eval_episodes=1"]
    store = tmp_path / "store"
    _ok(rlpad_fit(store, "j", over, profile="mspacman"))
    import h5py
    with h5py.File(store / "j" / "1-fit" / "rollout.h5") as f:
        acts = f["actions"][...]
    assert acts.shape == (32, 4, 2) and np.isfinite(acts).all()  # the stick's (x, y) samples
