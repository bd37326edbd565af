"""Reward shaping on the real MsPacman ROM: ghosts (not fruit) read from the emulator, a lost
life penalised once, the learner's reward shaped while every reported score stays raw."""
from __future__ import annotations

import csv
import json

import gymnasium as gym
import numpy as np
import pytest

from rlpad.config import ShapingConfig, load_config
from rlpad.envs import make_env
from rlpad.shaping import GhostPoints, Shaped

from conftest import rlpad


def _frame_env():
    import ale_py

    gym.register_envs(ale_py)
    return GhostPoints(gym.make("ALE/MsPacman-v5", frameskip=1, repeat_action_probability=0.0))


def _random_frames(episodes):
    """(reward, ghost points scored on that frame) for every scoring frame of random play
    that holds a direction for a while (episode k on env seed k, policy RNG (7, k))."""
    env, out = _frame_env(), []
    for ep in episodes:
        rng = np.random.default_rng([7, ep])
        env.reset(seed=ep)
        a, done, t, before = 0, False, 0, 0
        while not done:
            if t % 8 == 0 and rng.random() < 0.3:
                a = int(rng.integers(1, 9))
            _, r, term, trunc, info = env.step(a)
            t += 1
            if r > 0:
                out.append((float(r), info["ghost_points"] - before))
            before, done = info["ghost_points"], term or trunc
    env.close()
    return out


@pytest.fixture(scope="module")
def frames():
    # of episodes 0-39, those where random play eats a cherry (3, 18, 39) or ghosts, two in a
    # row in 7 and 29 (a 400)
    return _random_frames((3, 6, 7, 15, 18, 19, 27, 29, 35, 39))


def test_ghosts_are_read_from_ram_and_fruit_is_not(frames):
    ghost_values = {200, 400, 800, 1600}
    eaten = [(r, g) for r, g in frames if g]
    assert len(eaten) >= 10, "random play ate too few ghosts to test"
    for r, g in eaten:
        assert g in ghost_values and r - g in (0, 10, 50, 100)  # a dot or fruit on the same frame
    # a frame paying what only a ghost pays (400, 800, 1600, with or without a dot) is a ghost
    only_ghost = [(r, g) for r, g in frames if r - r % 100 in (400, 800, 1600) and r % 100 in (0, 10)]
    assert only_ghost and all(g == r - r % 100 for r, g in only_ghost)
    # the level-1 fruit (a cherry, 100) is eaten and never counted as a ghost
    fruit = [(r, g) for r, g in frames if r in (100, 110)]
    assert fruit and all(g == 0 for _, g in fruit)
    # dots and pellets are never ghosts
    assert all(g == 0 for r, g in frames if r in (10, 50, 60))


def test_ghost_points_are_multiplied_and_a_lost_life_is_penalised_once():
    cfg = load_config("mspacman")
    env = make_env(cfg.env, shaping=ShapingConfig(reward_fn="raw", death_penalty=7.0, ghost_multiplier=3.0))
    assert isinstance(env, Shaped)
    rng = np.random.default_rng(1)
    _, info = env.reset(seed=3)
    lives0, lost, ghost_points, done, a, t = info["lives"], 0, 0, False, 0, 0
    raw_total = shaped_total = 0.0
    while not done:
        if t % 2 == 0 and rng.random() < 0.3:
            a = int(rng.integers(1, 9))
        prev = info["lives"]
        _, shaped, term, trunc, info = env.step(a)
        t += 1
        raw, ghosts = info["raw_reward"], info["ghost_step_points"]
        died = info["lives"] < prev
        lost += died
        ghost_points += ghosts
        assert shaped == pytest.approx(raw + 2.0 * ghosts - 7.0 * died)
        raw_total += raw
        shaped_total += shaped
        done = term or trunc
    # the game ended by losing every life, each penalised on exactly one step
    assert lost >= 1 and lost == lives0 - info["lives"]
    assert shaped_total == pytest.approx(raw_total + 2.0 * ghost_points - 7.0 * lost)
    env.close()


def test_reward_functions_by_name():
    env = make_env(load_config("mspacman").env, shaping=ShapingConfig(reward_fn="log"))
    env.reset(seed=0)
    seen = set()
    for _ in range(300):
        _, shaped, term, trunc, info = env.step(3)
        seen.add((info["raw_reward"], round(shaped, 6)))
        if term or trunc:
            break
    assert (10.0, round(float(np.log1p(10.0)), 6)) in seen and (0.0, 0.0) in seen
    env.close()
    with pytest.raises(Exception, match="shaping.reward_fn"):
        load_config("mspacman", ["shaping.reward_fn=cube"])


@pytest.mark.parametrize("kind", ["dqn", "double-dqn", "split-q"])
def test_mspacman_stage1_tiny_on_the_rom_learns_shaped_and_reports_raw(tmp_path, kind):
    tiny = ["dqn.total_steps=300", "dqn.learning_starts=100", "dqn.buffer_size=1000",
            "dqn.eval_every=300", "dqn.eval_episodes=1", "dqn.final_eval_episodes=1",
            "env.max_episode_steps=120", "dqn.checkpoint_every=300", f"learner.kind={kind}"]
    store = tmp_path / "store"
    rlpad("fit", "--store", str(store), "--run", "m", "--profile", "mspacman",
          *[a for s in tiny for a in ("--set", s)])
    d = store / "m" / "1-fit"
    man = json.loads((d / "manifest.json").read_text())
    assert man["metrics"]["learner"] == kind and man["config"]["shaping"]["ghost_multiplier"] == 2.0
    with open(d / "curve.csv") as f:
        row = list(csv.DictReader(f))[-1]
    # two episodes of 120 steps: the raw score (dots are worth 10) and the learner's log-scaled one
    raw, shaped = float(row["train_return"]), float(row["train_shaped_return"])
    assert raw >= 10 * shaped / np.log1p(10) - 1e-6 and raw > shaped > 0
    # the replay holds what the learner learnt from: log-shaped rewards, not raw points
    from rlpad.replay import ReplayMemory
    rep = ReplayMemory.load(str(d / "replay.h5"))
    r = rep.rewards[:rep.size]
    assert r.max() < 10 and np.isclose(r, np.log1p(10.0)).any()
