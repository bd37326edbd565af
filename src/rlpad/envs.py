"""Gymnasium environment factories and the frame stack shared by acting and replay.

Atari: ALE v5 with frameskip=1 under AtariPreprocessing (84x84 grey, frame skip 4,
no-op starts), sticky actions off as in the seed's Deterministic-v4. Frames are stacked
by `FrameStack` (not a wrapper) so that acting, replay and evaluation all rebuild
states by the same rule: an episode's first frame repeats until the stack fills.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import gymnasium as gym
import numpy as np

from .config import EnvConfig, ShapingConfig
from .shaping import GhostPoints, Shaped, ghost_env


@dataclass(frozen=True)
class EnvSpec:
    """What the networks and the replay need to know about an environment."""

    frame_shape: tuple[int, ...]
    frame_dtype: np.dtype
    stack: int
    n_actions: int
    action_ids: tuple[int, ...]  # our action index -> the env's action id

    @property
    def obs_shape(self) -> tuple[int, ...]:
        # Atari states are (stack, 84, 84); vector states concatenate frames; an unstacked
        # image (MinAtar's 10 x 10 x channels) is the frame itself.
        if len(self.frame_shape) == 1:
            return (self.frame_shape[0] * self.stack,)
        if self.stack == 1:
            return self.frame_shape
        return (self.stack, *self.frame_shape)


def _base_env(cfg: EnvConfig, render: bool = False) -> gym.Env:
    mode = {"render_mode": "rgb_array"} if render else {}
    if cfg.kind == "atari":
        import ale_py

        gym.register_envs(ale_py)
        env = gym.make(cfg.id, frameskip=1, repeat_action_probability=0.0, **mode)
        if ghost_env(cfg.id):  # frame by frame, below the frame skip (rlpad/shaping.py)
            env = GhostPoints(env)
        env = gym.wrappers.AtariPreprocessing(
            env, noop_max=cfg.noop_max, frame_skip=4, screen_size=84,
            terminal_on_life_loss=False, grayscale_obs=True, scale_obs=False)
        # Outside the frame skip, so the limit counts agent steps, not emulator frames.
        return gym.wrappers.TimeLimit(env, cfg.max_episode_steps) if cfg.max_episode_steps else env
    if cfg.kind == "minatar":
        import minatar.gym

        if cfg.id not in gym.registry:
            minatar.gym.register_envs()
    kwargs = {"max_episode_steps": cfg.max_episode_steps} if cfg.max_episode_steps else {}
    return gym.make(cfg.id, **kwargs, **mode)


def make_env(cfg: EnvConfig, render: bool = False, shaping: ShapingConfig | None = None) -> gym.Env:
    """render: env.render() returns RGB frames (what `rlpad play` records). shaping: the
    learner's reward (stage 1's training actor only; the raw one is in info["raw_reward"])."""
    try:
        env = _base_env(cfg, render)
    except gym.error.Error as e:
        raise ValueError(f"env.id {cfg.id!r} cannot be made: {e}") from e
    if shaping is not None and shaping != ShapingConfig():
        env = Shaped(env, shaping.reward_fn, shaping.death_penalty, shaping.ghost_multiplier)
    return env


def env_spec(cfg: EnvConfig) -> EnvSpec:
    env = make_env(cfg)
    try:
        obs_space, act_space = env.observation_space, env.action_space
        if not isinstance(act_space, gym.spaces.Discrete):
            raise ValueError(f"env.id {cfg.id!r} has a non-discrete action space")
        ids = tuple(cfg.actions) if cfg.actions else tuple(range(int(act_space.n)))
        bad = [a for a in ids if not 0 <= a < act_space.n]
        if bad:
            raise ValueError(f"env.actions {bad} out of range for {cfg.id} ({act_space.n} actions)")
        # ALE frames and MinAtar's boolean channels are stored as bytes
        dtype = np.dtype(np.float32) if cfg.kind == "classic" else np.dtype(np.uint8)
        return EnvSpec(tuple(obs_space.shape), dtype, cfg.frame_stack, len(ids), ids)
    finally:
        env.close()


class FrameStack:
    """The newest `stack` frames; on reset the first frame fills the stack."""

    def __init__(self, spec: EnvSpec):
        self.spec = spec
        self.frames: deque = deque(maxlen=spec.stack)

    def reset(self, frame: np.ndarray) -> np.ndarray:
        for _ in range(self.spec.stack):
            self.frames.append(frame)
        return self.state()

    def push(self, frame: np.ndarray) -> np.ndarray:
        self.frames.append(frame)
        return self.state()

    def state(self) -> np.ndarray:
        if self.spec.stack == 1 and len(self.spec.frame_shape) > 1:
            return np.asarray(self.frames[0]).astype(self.spec.frame_dtype, copy=False)
        if len(self.spec.frame_shape) == 1:
            return np.concatenate(self.frames).astype(self.spec.frame_dtype, copy=False)
        return np.stack(self.frames).astype(self.spec.frame_dtype, copy=False)
