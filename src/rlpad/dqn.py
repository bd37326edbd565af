"""Stage 1's algorithm: DQN (Mnih et al. 2015) with a target net and Huber loss.

`DQNAgent` owns learning (networks, optimizer, the tf.function steps); `train_dqn` is
the runner that owns the loop (acting, replay, evaluation, checkpoints). Neither
touches the store: checkpoints go through the `Checkpointer` the stage passes in.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass, field
from typing import Callable, Protocol

import h5py
import numpy as np
import tensorflow as tf
import keras

from . import failpoints
from .actor import Actor, epsilon_at
from .config import Config, ShapingConfig
from .envs import EnvSpec
from .h5arrays import assign_arrays, read_arrays, write_arrays
from .optim import FusedOptimizer
from .play import final_scores, play
from .progress import Progress
from .qnet import QNet, build_qnet
from .replay import ReplayMemory


def save_optimizer(opt: FusedOptimizer, path: str) -> None:
    with h5py.File(path, "w") as f:
        write_arrays(f, opt.variables)


def load_optimizer(opt: FusedOptimizer, path: str) -> None:
    with h5py.File(path, "r") as f:
        assign_arrays(opt.variables, f, f"{path}: optimizer state")


class DQNAgent:
    def __init__(self, cfg: Config, spec: EnvSpec):
        self.cfg, self.spec = cfg.dqn, spec
        self.double = cfg.double_dqn  # learner.kind = "double-dqn" (or the older flag)
        self.online: QNet = self._build_net(cfg)
        self.target: QNet = self._build_net(cfg)
        self.sync_target()
        c = self.cfg
        self.opt = FusedOptimizer(c.optimizer, c.lr, c.opt_eps, self.online.model.trainable_variables,
                                  c.max_grad_norm)
        self.q_values = tf.function(lambda s: self.online.model(s, training=False),
                                    reduce_retracing=True)
        # Concrete functions: a call skips tf.function's signature matching (~0.3 ms of a
        # 0.8 ms act at batch 1), and acting returns the argmax, not a tensor to slice. Acting
        # is XLA-compiled: at batch 1 XLA's convolutions beat oneDNN's (0.45 vs 0.5-0.6 ms).
        obs = tf.TensorSpec(spec.obs_shape, self.online.model.input.dtype)
        self._act = tf.function(
            lambda s: tf.argmax(self.online.model(s[None], training=False)[0], output_type=tf.int32),
            jit_compile=True).get_concrete_function(obs)
        batch = tf.TensorSpec([None, *spec.obs_shape], obs.dtype)
        vec = lambda dt: tf.TensorSpec([None], dt)  # noqa: E731
        self._train = tf.function(self._train_step).get_concrete_function(
            batch, vec(tf.int32), vec(tf.float32), batch, vec(tf.float32), *self._extra_specs())

    def _build_net(self, cfg: Config) -> QNet:
        return build_qnet(cfg.qnet, self.spec.obs_shape, self.spec.n_actions)

    def _extra_specs(self) -> tuple:
        return ()  # inputs a learner's train step takes beyond the batch

    def export_qnet(self) -> QNet:
        """The standard Q-net (encoder + one linear head) stage 1 ships for stages 2-4."""
        return self.online

    def write_outputs(self, out_dir: str) -> None:
        """Learner-specific files beside qnet.weights.h5 (none for DQN)."""

    def _train_step(self, s, a, r, s2, done):
        c = self.cfg
        q_next = self.target.model(s2, training=False)
        if self.double:
            a2 = tf.argmax(self.online.model(s2, training=False), axis=1)
            v_next = tf.gather(q_next, a2, axis=1, batch_dims=1)
        else:
            v_next = tf.reduce_max(q_next, axis=1)
        y = tf.stop_gradient(r + c.gamma * (1.0 - done) * v_next)
        with tf.GradientTape() as tape:
            q = tf.gather(self.online.model(s, training=True), a, axis=1, batch_dims=1)
            err = y - q
            if c.loss == "huber":
                loss = tf.reduce_mean(tf.where(tf.abs(err) <= 1.0, 0.5 * err ** 2,
                                               tf.abs(err) - 0.5))
            else:
                loss = tf.reduce_mean(err ** 2)
        variables = self.online.model.trainable_variables
        self.opt.apply(tape.gradient(loss, variables))  # clips to max_grad_norm when set
        return loss

    def train(self, batch) -> float:
        s, a, r, s2, done = batch
        if self.cfg.clip_reward:
            r = np.clip(r, -1.0, 1.0)
        return float(self._train(tf.constant(s), tf.constant(a, tf.int32), tf.constant(r, tf.float32),
                                 tf.constant(s2), tf.constant(done, tf.float32)))

    def act(self, state: np.ndarray) -> int:
        return int(self._act(tf.constant(state)))

    def sync_target(self) -> None:
        self.target.model.set_weights(self.online.model.get_weights())

    def save(self, d: str) -> None:
        self.online.model.save_weights(os.path.join(d, "online.weights.h5"))
        self.target.model.save_weights(os.path.join(d, "target.weights.h5"))
        save_optimizer(self.opt, os.path.join(d, "optimizer.h5"))

    def load(self, d: str) -> None:
        self.online.model.load_weights(os.path.join(d, "online.weights.h5"))
        self.target.model.load_weights(os.path.join(d, "target.weights.h5"))
        load_optimizer(self.opt, os.path.join(d, "optimizer.h5"))


class Checkpointer(Protocol):
    def save(self, local_dir: str, step: int, info: dict) -> None: ...
    def load(self, local_dir: str) -> dict | None: ...


@dataclass
class DQNResult:
    agent: DQNAgent
    replay: ReplayMemory
    curve: list[dict]
    metrics: dict
    resumed_from: int = 0

    def write(self, out_dir: str) -> None:
        """Stage 1's files: the standard Q-net stages 2-4 cut, the replay, the learner's own."""
        self.agent.export_qnet().model.save_weights(os.path.join(out_dir, "qnet.weights.h5"))
        self.replay.save(os.path.join(out_dir, "replay.h5"))
        self.agent.write_outputs(out_dir)

    @property
    def embed_dim(self) -> int:
        return self.agent.online.embed_dim


@dataclass
class _LoopState:
    """Everything besides networks, optimizer and replay that a resumed run needs to go on
    exactly as the run that was killed would have."""

    step: int = 0
    episodes: int = 0  # finished
    recent_returns: list[float] = field(default_factory=list)  # raw game scores
    recent_shaped: list[float] = field(default_factory=list)  # what the learner saw (shaping on)
    best_eval: float = float("-inf")
    best_step: int = -1
    curve: list[dict] = field(default_factory=list)
    rng_state: dict = field(default_factory=dict)
    stopped_early: bool = False
    episode: int = 0  # the episode under way and its actions so far: with its seed, the env
    episode_actions: list[int] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)  # since the last evaluation


def _save_weights_list(weights: list[np.ndarray], path: str) -> None:
    with h5py.File(path, "w") as f:
        write_arrays(f, weights)


def _load_weights_list(path: str) -> list[np.ndarray]:
    with h5py.File(path, "r") as f:
        return read_arrays(f)


_TB_PREFIX = "tb--"  # TensorBoard event files ride along in the (flat) checkpoint folder


def train_dqn(cfg: Config, spec: EnvSpec, workdir: str, ckpt: Checkpointer,
              log: Callable[[str], None] = print, tb_dir: str | None = None,
              make_agent: Callable[[Config, EnvSpec], DQNAgent] = DQNAgent) -> DQNResult:
    """Train from scratch, or resume from `ckpt`'s newest checkpoint. On CPU a run killed at
    any point and resumed ends bit-identical to one never killed (wall times aside): the
    checkpoint holds the networks, optimizer, replay, RNG, the episode under way and the
    losses since the last evaluation. make_agent: the learner on this loop (DQN's by default;
    Split-Q's differs in its net and update only)."""
    c = cfg.dqn
    keras.utils.set_random_seed(cfg.seed)
    agent = make_agent(cfg, spec)
    replay = ReplayMemory(c.buffer_size, spec.frame_shape, spec.frame_dtype, spec.stack)
    rng = np.random.default_rng(cfg.seed)
    st = _LoopState()
    best_weights = agent.online.model.get_weights()

    ckdir = os.path.join(workdir, "ckpt")
    marker = ckpt.load(ckdir)
    if marker is not None:
        agent.load(ckdir)
        replay = ReplayMemory.load(os.path.join(ckdir, "replay.h5"), c.buffer_size)
        with open(os.path.join(ckdir, "loop.json")) as f:
            st = _LoopState(**json.load(f))
        rng.bit_generator.state = st.rng_state
        best_weights = _load_weights_list(os.path.join(ckdir, "best.h5"))
        if tb_dir:
            os.makedirs(tb_dir, exist_ok=True)
            for name in os.listdir(ckdir):
                if name.startswith(_TB_PREFIX):
                    shutil.copyfile(os.path.join(ckdir, name),
                                    os.path.join(tb_dir, name[len(_TB_PREFIX):]))
        log(f"[1-fit] resuming from checkpoint at step {st.step:,} "
            f"({replay.size:,} replay rows kept, {st.episodes} episodes so far)")
    resumed_from = st.step

    writer = tf.summary.create_file_writer(tb_dir) if tb_dir else None
    actor = Actor(cfg, spec, agent, replay, rng)
    if marker is None:
        actor.reset()
    else:
        actor.restore(st.episode, st.episode_actions)
    losses = st.losses
    shaping_on = cfg.shaping != ShapingConfig()
    prog = Progress(c.total_steps, "1-fit", start=st.step)
    t_last, step_last = time.time(), st.step

    def checkpoint() -> None:
        os.makedirs(ckdir, exist_ok=True)
        agent.save(ckdir)
        replay.save(os.path.join(ckdir, "replay.h5"))
        _save_weights_list(best_weights, os.path.join(ckdir, "best.h5"))
        st.rng_state = rng.bit_generator.state
        st.episode, st.episode_actions = actor.episode, list(actor.actions)
        with open(os.path.join(ckdir, "loop.json"), "w") as f:
            json.dump(st.__dict__, f)
        if writer:
            writer.flush()
            for name in os.listdir(tb_dir):
                shutil.copyfile(os.path.join(tb_dir, name), os.path.join(ckdir, _TB_PREFIX + name))
        ckpt.save(ckdir, st.step, {"episodes": st.episodes})

    def evaluate() -> None:
        nonlocal best_weights, t_last, step_last
        res = play(agent.q_values, cfg.env, spec, c.eval_episodes, seed=cfg.seed + 1_000_000 + st.step,
                   n_envs=min(c.eval_episodes, 8), epsilon=c.eval_epsilon)
        failpoints.hit("1-fit.eval")
        mean, std = float(res.returns.mean()), float(res.returns.std())
        if mean > st.best_eval:
            st.best_eval, st.best_step = mean, st.step
            best_weights = agent.online.model.get_weights()
        now = time.time()
        sps = (st.step - step_last) / max(now - t_last, 1e-9)
        t_last, step_last = now, st.step
        row = {"step": st.step, "episodes": st.episodes,
               "train_return": float(np.mean(st.recent_returns)) if st.recent_returns else float("nan"),
               "eval_return_mean": mean, "eval_return_std": std,
               "td_loss": float(np.mean(losses)) if losses else float("nan"),
               "epsilon": epsilon_at(c, st.step), "steps_per_s": sps}
        if shaping_on:  # the default's curve keeps its columns
            row["train_shaped_return"] = float(np.mean(st.recent_shaped)) if st.recent_shaped \
                else float("nan")
        st.curve.append(row)
        losses.clear()
        if writer:
            with writer.as_default(step=st.step):
                tf.summary.scalar("charts/eval_return", mean)
                tf.summary.scalar("charts/SPS", sps)
                if not np.isnan(row["td_loss"]):
                    tf.summary.scalar("losses/td_loss", row["td_loss"])
        if c.stop_at_eval_return and mean >= c.stop_at_eval_return:
            st.stopped_early = True

    while st.step < c.total_steps and not st.stopped_early:
        eps = epsilon_at(c, st.step)
        _, ended = actor.step(eps)
        st.step += 1
        failpoints.hit("1-fit.step")
        if ended is not None:
            ended_return, ended_shaped = ended
            st.episodes += 1
            st.recent_returns = (st.recent_returns + [ended_return])[-20:]
            if shaping_on:
                st.recent_shaped = (st.recent_shaped + [ended_shaped])[-20:]
            if writer:
                with writer.as_default(step=st.step):
                    tf.summary.scalar("charts/episodic_return", ended_return)
                    if shaping_on:
                        tf.summary.scalar("charts/episodic_shaped_return", ended_shaped)
                    tf.summary.scalar("charts/epsilon", eps)
        if st.step >= c.learning_starts and st.step % c.train_freq == 0:
            if c.lr_final != 1.0:  # linear decay, from the step: a resumed run continues it
                agent.opt.lr.assign(c.lr * (1.0 + (c.lr_final - 1.0) * st.step / c.total_steps))
            for _ in range(c.gradient_steps):
                losses.append(agent.train(replay.sample(rng, c.batch_size)))
        if st.step % c.target_update == 0:
            agent.sync_target()
        if st.step % c.eval_every == 0:
            evaluate()
        if st.step % c.checkpoint_every == 0 and st.step < c.total_steps and not st.stopped_early:
            checkpoint()
        prog.update(st.step, eps=eps, ret=st.recent_returns[-1] if st.recent_returns else 0.0,
                    best_eval=st.best_eval)
    actor.close()
    if not st.curve or st.curve[-1]["step"] != st.step:
        evaluate()
    prog.close(best_eval=st.best_eval)

    shipped_step = st.step
    if c.keep_best and st.best_step >= 0:
        agent.online.model.set_weights(best_weights)
        shipped_step = st.best_step
    scores = final_scores(agent.q_values, cfg.env, spec, c.final_eval_episodes, cfg.seed,
                          cfg.env.win_threshold, epsilon=c.eval_epsilon)
    if writer:
        writer.flush()
    metrics = {
        **scores,
        "agent_steps": st.step,
        "episodes": st.episodes,
        "shipped_weights_step": shipped_step,
        "best_periodic_eval": st.best_eval,
        "stopped_early": st.stopped_early,
        "replay_rows": replay.size,
        "replay_transitions": replay.n_transitions(),
    }
    return DQNResult(agent, replay, st.curve, metrics, resumed_from)
