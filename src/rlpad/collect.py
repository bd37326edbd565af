"""The shipped agent's own epsilon-greedy play, recorded as a replay memory: stage 2's
`policy` dataset kind (what D4RL and Minari call expert data, with epsilon noise).

It is recorded exactly as stage 1 records (the same Actor: frames, lost lives terminal when the
profile says so), on episodes of their own seeds, so neither training nor any evaluation episode
reappears in it.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

from .config import Config
from .envs import EnvSpec
from .replay import ROW_ARRAYS, ReplayMemory
from .seeding import derive_seed


class _Greedy:
    """What the Actor asks of an agent: a greedy action for one state."""

    def __init__(self, q_fn):
        self.q_fn = q_fn

    def act(self, state: np.ndarray) -> int:
        return int(np.asarray(self.q_fn(state[None]))[0].argmax())


def collect_policy_data(fit_cfg: Config, spec: EnvSpec, model, steps: int, epsilon: float,
                        progress: Callable[[int], None] | None = None,
                        ) -> tuple[ReplayMemory, list[float]]:
    """Exactly `steps` transitions of `model` (the stage-1 Q-net) playing fit_cfg's env
    epsilon-greedily, as stage 1 stops at its total steps (the last episode may be cut short).
    `progress(t)`: t steps done so far. Returns the memory and the finished episodes' returns;
    a pure function of fit_cfg's seed and the arguments."""
    import tensorflow as tf

    from .actor import Actor

    q_fn = tf.function(lambda s: model(s, training=False), reduce_retracing=True)
    seed = derive_seed(fit_cfg.seed, "policy-data")
    cfg = dataclasses.replace(fit_cfg, seed=seed)  # the Actor's episode seeds come from cfg.seed
    mem = ReplayMemory(steps + 64, spec.frame_shape, spec.frame_dtype, spec.stack)
    actor = Actor(cfg, spec, _Greedy(q_fn), mem, np.random.default_rng(seed))
    returns: list[float] = []
    try:
        actor.reset()
        for t in range(1, steps + 1):
            if actor.replay.size + 2 >= actor.replay.capacity:  # each new episode adds a row
                actor.replay = _enlarged(actor.replay)
            _, ended = actor.step(epsilon)
            if ended is not None:
                returns.append(ended)
            if progress and (t % 1000 == 0 or t == steps):
                progress(t)
    finally:
        actor.close()
    return actor.replay, returns


def _enlarged(mem: ReplayMemory) -> ReplayMemory:
    """The same rows in a memory of 1.25x the capacity (the memory has not wrapped)."""
    out = ReplayMemory(int(mem.capacity * 1.25) + 64, mem.frame_shape, mem.frame_dtype, mem.stack)
    for name in ("frames", *ROW_ARRAYS):
        getattr(out, name)[:mem.size] = getattr(mem, name)[:mem.size]
    out.size, out.cursor, out.added = mem.size, mem.size, mem.added
    return out
