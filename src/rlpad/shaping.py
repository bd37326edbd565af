"""Reward shaping for learning, as env wrappers (rl-dash-days' -r, -d and -g options).

The learner sees the shaped reward; every reported game score stays the raw one: `Shaped`
returns the shaped reward and puts the raw one in info["raw_reward"], and only stage 1's
training actor wraps its env (evaluation, stage 2-4 play and `rlpad play` use the raw env).

shaped = fn(raw + (ghost_multiplier - 1) * ghost_points) - death_penalty * (a life was lost)

MsPacman's ghosts score 200/400/800/1600 but a fruit can score 200 too, and a frame skip sums
a step's rewards; so ghost points are read from the emulator, frame by frame, below the frame
skip (`GhostPoints`): the top two bits of RAM byte 116 count the ghosts eaten since the last
power pellet (they step by one exactly on the frames a ghost is eaten, and a fruit leaves
them alone; tests/test_shaping.py checks it on the ROM), and the k-th ghost (k = 0..3) scores
200 * 2**k.
"""
from __future__ import annotations

from typing import Callable

import gymnasium as gym
import numpy as np

REWARD_FNS: dict[str, Callable[[float], float]] = {
    "raw": lambda r: r,
    "clip": lambda r: float(np.clip(r, -1.0, 1.0)),  # DQN's Atari reward clipping
    "sign": lambda r: float(np.sign(r)),
    "log": lambda r: float(np.sign(r) * np.log1p(abs(r))),  # keeps order, shrinks 1600 to 7.4
}

MSPACMAN_GHOST_RAM = 116


def ghost_env(env_id: str) -> bool:
    return "mspacman" in env_id.lower().replace("_", "").replace("-", "")


class GhostPoints(gym.Wrapper):
    """Frame-level (under the frame skip): info["ghost_points"] = the points scored by eating
    ghosts so far in this episode."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self._ale = env.unwrapped.ale
        self.total = 0

    def _count(self) -> int:
        return int(self._ale.getRAM()[MSPACMAN_GHOST_RAM]) >> 6

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        self.total, self._before = 0, self._count()
        info["ghost_points"] = 0
        return obs, info

    def step(self, action):
        obs, r, term, trunc, info = self.env.step(action)
        after = self._count()
        # a ghost: the counter steps by one and the frame scores a ghost's points (a power
        # pellet resets the counter to 0, which from 3 is also a step of one mod 4: it scores 50)
        if (after - self._before) % 4 == 1 and r >= 200:
            self.total += 200 * 2 ** self._before
        self._before = after
        info["ghost_points"] = self.total
        return obs, r, term, trunc, info


class Shaped(gym.Wrapper):
    """Agent-step level: the shaped reward, with the raw one in info["raw_reward"]."""

    def __init__(self, env: gym.Env, reward_fn: str = "raw", death_penalty: float = 0.0,
                 ghost_multiplier: float = 1.0):
        super().__init__(env)
        self.fn = REWARD_FNS[reward_fn]
        self.death_penalty, self.ghost_multiplier = death_penalty, ghost_multiplier

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        self._lives, self._ghosts = info.get("lives", 0), info.get("ghost_points", 0)
        return obs, info

    def step(self, action):
        obs, raw, term, trunc, info = self.env.step(action)
        ghosts = info.get("ghost_points", 0) - self._ghosts
        lost = info.get("lives", 0) < self._lives
        self._lives, self._ghosts = info.get("lives", 0), info.get("ghost_points", 0)
        shaped = self.fn(float(raw) + (self.ghost_multiplier - 1.0) * ghosts)
        if lost:
            shaped -= self.death_penalty
        info["raw_reward"], info["ghost_step_points"] = float(raw), ghosts
        return obs, shaped, term, trunc, info
