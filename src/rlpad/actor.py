"""Stage 1's acting: epsilon-greedy play of one env into the replay memory, and the
rebuild of a half-played episode when a killed run resumes."""
from __future__ import annotations

from typing import Protocol

import numpy as np

from .config import Config, DQNConfig
from .envs import EnvSpec, FrameStack, make_env
from .replay import ReplayMemory
from .seeding import episode_seed


class Acts(Protocol):
    def act(self, state: np.ndarray) -> int: ...


def epsilon_at(c: DQNConfig, step: int) -> float:
    frac = min(1.0, step / c.eps_decay_steps)
    return c.eps_start + frac * (c.eps_end - c.eps_start)


class ResumeError(RuntimeError):
    pass


class Actor:
    """Epsilon-greedy play of one env, every step recorded in the replay memory. A lost life
    is terminal for learning (not for play) when the profile says so, as in the seed.
    Episode k runs on env seed episode_seed(seed, k); the actor keeps the actions of the
    episode under way, which with that seed are the whole env state (see `restore`)."""

    def __init__(self, cfg: Config, spec: EnvSpec, agent: Acts, replay: ReplayMemory,
                 rng: np.random.Generator):
        self.cfg, self.spec, self.agent, self.replay, self.rng = cfg, spec, agent, replay, rng
        self.env = make_env(cfg.env, shaping=cfg.shaping)  # learns from shaped, scores raw
        self.stacker = FrameStack(spec)
        self.episode = -1
        self.actions: list[int] = []  # this episode's actions so far (our indices)
        self.ep_return = self.ep_shaped = 0.0

    def _reset_env(self, episode: int) -> np.ndarray:
        self.episode, self.actions, self.ep_return, self.ep_shaped = episode, [], 0.0, 0.0
        obs, info = self.env.reset(seed=episode_seed(self.cfg.seed, episode))
        self.state = self.stacker.reset(obs)
        self.lives = info.get("lives", 0)
        return obs

    def reset(self) -> None:
        """Start the next episode and record its first frame."""
        self.replay.start_episode(self._reset_env(self.episode + 1))

    def _env_step(self, a: int):
        obs, r, term, trunc, info = self.env.step(self.spec.action_ids[a])
        lost = info.get("lives", 0) < self.lives
        self.lives = info.get("lives", 0)
        self.actions.append(a)
        self.ep_return += float(info.get("raw_reward", r))
        self.ep_shaped += float(r)
        self.state = self.stacker.push(obs)
        return obs, float(r), bool(term), bool(trunc), bool(lost)

    def restore(self, episode: int, actions: list[int]) -> None:
        """Rebuild episode `episode` after `actions` (a resumed run) without recording:
        the replay already holds those steps. The rebuilt frame must be the replay's newest."""
        obs = self._reset_env(episode)
        for a in actions:
            obs = self._env_step(int(a))[0]
        newest = self.replay.frames[(self.replay.cursor - 1) % self.replay.capacity]
        if not np.array_equal(obs, newest):
            raise ResumeError(
                f"env {self.cfg.env.id!r} did not replay episode {episode} to the checkpoint's "
                "frame: it is not deterministic under its seed, so the run cannot resume "
                "exactly; rerun `bash 1-initial-fit.sh` with --force")

    def step(self, eps: float) -> tuple[float, tuple[float, float] | None]:
        """One agent step: (reward learnt from, the episode's raw and shaped returns if it
        just ended, else None). A finished episode restarts."""
        if self.rng.random() < eps:
            a = int(self.rng.integers(self.spec.n_actions))
        else:
            a = self.agent.act(self.state)
        obs, r, term, trunc, lost = self._env_step(a)
        terminal = term or (lost and self.cfg.env.life_loss_terminal)
        self.replay.add(a, r, terminal, obs, terminated=term, truncated=trunc, life_lost=lost)
        if term or trunc:
            ended = (self.ep_return, self.ep_shaped)
            self.reset()
            return r, ended
        return r, None

    def close(self) -> None:
        self.env.close()
