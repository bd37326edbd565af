"""Batched game play: many envs step together, one forward pass picks all actions.

Episode j always runs on env seed `seed + j` with its own exploration RNG, so scores
do not depend on how many envs play at once.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from .config import EnvConfig
from .envs import EnvSpec, FrameStack, make_env


@dataclass
class PlayResult:
    returns: np.ndarray  # (episodes,) undiscounted game score
    lengths: np.ndarray  # (episodes,) agent steps


def play(q_fn: Callable[[np.ndarray], np.ndarray], env_cfg: EnvConfig, spec: EnvSpec,
         episodes: int, seed: int, n_envs: int = 8, epsilon: float = 0.0,
         max_steps: int = 0) -> PlayResult:
    """q_fn maps a batch of states to Q-values (a tf.function, never model.predict)."""
    n_envs = max(1, min(n_envs, episodes))
    envs = [make_env(env_cfg) for _ in range(n_envs)]
    stacks = [FrameStack(spec) for _ in range(n_envs)]
    returns = np.zeros(episodes, np.float64)
    lengths = np.zeros(episodes, np.int64)
    slot_ep = [-1] * n_envs  # episode index each env is playing, -1 = idle
    rngs: list[np.random.Generator | None] = [None] * n_envs
    states = [None] * n_envs
    next_ep = 0

    def start(k: int) -> None:
        nonlocal next_ep
        if next_ep >= episodes:
            slot_ep[k] = -1
            return
        obs, _ = envs[k].reset(seed=seed + next_ep)
        states[k] = stacks[k].reset(obs)
        rngs[k] = np.random.default_rng([seed, next_ep])
        slot_ep[k] = next_ep
        next_ep += 1

    try:
        for k in range(n_envs):
            start(k)
        while any(e >= 0 for e in slot_ep):
            live = [k for k in range(n_envs) if slot_ep[k] >= 0]
            q = np.asarray(q_fn(np.stack([states[k] for k in live])))
            greedy = q.argmax(axis=1)
            for k, a in zip(live, greedy):
                ep = slot_ep[k]
                if epsilon > 0 and rngs[k].random() < epsilon:
                    a = rngs[k].integers(spec.n_actions)
                obs, r, term, trunc, _ = envs[k].step(spec.action_ids[int(a)])
                returns[ep] += r
                lengths[ep] += 1
                states[k] = stacks[k].push(obs)
                if term or trunc or (max_steps and lengths[ep] >= max_steps):
                    start(k)
    finally:
        for env in envs:
            env.close()
    return PlayResult(returns, lengths)


FINAL_SEED_OFFSET = 10_000_000


def final_scores(q_fn, env_cfg: EnvConfig, spec: EnvSpec, episodes: int, seed: int,
                 win_threshold: float, epsilon: float = 0.0) -> dict:
    """Stage 1's final evaluation of a shipped agent, and a uniform-random policy on the same
    episodes (the floor of normalised scores): the score part of its metrics."""
    kw = dict(seed=seed + FINAL_SEED_OFFSET, n_envs=min(episodes, 8))
    final = play(q_fn, env_cfg, spec, episodes, epsilon=epsilon, **kw)
    rand = play(q_fn, env_cfg, spec, episodes, epsilon=1.0, **kw)
    return {
        "eval_return_mean": float(final.returns.mean()),
        "eval_return_std": float(final.returns.std()),
        "eval_episodes": int(len(final.returns)),
        "eval_returns": [float(x) for x in final.returns],
        "win_rate": float(np.mean(final.returns >= win_threshold)),
        "random_return_mean": float(rand.returns.mean()),
        "random_returns": [float(x) for x in rand.returns],
    }
