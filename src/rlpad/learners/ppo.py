"""PPO (Schulman et al. 2017) as one readable flow, after CleanRL's ppo.py: several envs stepped
together, GAE, the clipped surrogate with value and entropy terms, minibatch epochs.

The net: stage 1's encoder (the profile's [qnet] torso) with a policy head and a value head on
ReLU(e). `head = "discrete"`: a softmax over the actions. `head = "joystick"`: a 2-D Gaussian
(x, y), state-dependent mean and log-sd, mapped to the game's 9 directions (`joystick.py`), as
rl-dash-days' MsPacman PPO did. A truncated episode bootstraps its last reward with the value of
its final state (as SB3 does); a terminated one does not.
PPO has no Q-net: stage 1 writes the policy/value net and the last rollout; stages 2-4 refuse
it. Checkpoints come at rollout boundaries with everything a resumed run needs to go on exactly
(weights, optimizer, RNG, each env's episode and its actions so far, the curve).
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from typing import Callable

import h5py
import numpy as np
import tensorflow as tf
import keras
from keras import layers

from .. import failpoints
from ..config import Config, ConfigError
from ..envs import EnvSpec, FrameStack, make_env
from ..h5arrays import assign_arrays, read_arrays, write_arrays
from ..optim import FusedOptimizer
from ..play import final_scores, play
from ..progress import Progress
from ..qnet import build_encoder
from ..seeding import episode_seed
from .joystick import joystick_table

LOG_STD_RANGE = (-5.0, 2.0)


def build_policy(cfg: Config, spec: EnvSpec) -> keras.Model:
    """obs -> (policy output, value): logits (A) or joystick mean and log-sd (4)."""
    enc = build_encoder(cfg.qnet, spec.obs_shape)
    x_in = keras.Input(spec.obs_shape, dtype=enc.input.dtype, name="state")
    h = layers.ReLU()(enc(x_in))
    width = spec.n_actions if cfg.ppo.head == "discrete" else 4
    pi = layers.Dense(width, kernel_initializer=keras.initializers.Orthogonal(0.01), name="policy")(h)
    v = layers.Dense(1, kernel_initializer=keras.initializers.Orthogonal(1.0), name="value")(h)
    return keras.Model(x_in, [pi, v[:, 0]], name="ppo")


def _gauss(out):
    mean = out[:, :2]
    log_std = tf.clip_by_value(out[:, 2:], *LOG_STD_RANGE)
    return mean, log_std


def _gauss_logp(mean, log_std, x):
    z = (x - mean) / tf.exp(log_std)
    return tf.reduce_sum(-0.5 * z ** 2 - log_std - 0.5 * np.log(2 * np.pi), axis=1)


class PPOAgent:
    def __init__(self, cfg: Config, spec: EnvSpec):
        self.cfg, self.p, self.spec = cfg, cfg.ppo, spec
        self.joystick = cfg.ppo.head == "joystick"
        if self.joystick:
            self.directions = joystick_table(cfg.env, spec)  # raises naming ppo.head if unfit
        self.net = build_policy(cfg, spec)
        self.opt = FusedOptimizer("adam", self.p.lr, 1e-5, self.net.trainable_variables,
                                  self.p.max_grad_norm)
        obs = tf.TensorSpec([None, *spec.obs_shape], self.net.input.dtype)
        self._forward = tf.function(lambda s: self.net(s, training=False)).get_concrete_function(obs)
        act = tf.TensorSpec([None, 2], tf.float32) if self.joystick else tf.TensorSpec([None], tf.int32)
        vec = tf.TensorSpec([None], tf.float32)
        self._train = tf.function(self._train_step).get_concrete_function(obs, act, vec, vec, vec, vec)

    def env_action(self, raw: np.ndarray) -> np.ndarray:
        """Our action indices from the policy's samples (joystick: the mapped direction)."""
        if not self.joystick:
            return raw.astype(np.int64)
        from .joystick import to_direction
        return np.array([self.directions[to_direction(x, y, self.p.dead_zone)] for x, y in raw])

    def sample(self, states: np.ndarray, rng: np.random.Generator):
        """(raw actions, log-probs, values) for a batch of states; sampling on the run's RNG."""
        out, v = (t.numpy() for t in self._forward(tf.constant(states)))
        if self.joystick:
            mean, log_std = out[:, :2], np.clip(out[:, 2:], *LOG_STD_RANGE)
            x = (mean + np.exp(log_std) * rng.standard_normal(mean.shape)).astype(np.float32)
            return x, _gauss_logp(mean, log_std, x).numpy(), v
        z = out - out.max(1, keepdims=True)
        logp_all = z - np.log(np.exp(z).sum(1, keepdims=True))
        a = (np.cumsum(np.exp(logp_all), 1) < rng.random((len(out), 1))).sum(1)
        a = np.minimum(a, out.shape[1] - 1)
        return a.astype(np.int32), logp_all[np.arange(len(a)), a].astype(np.float32), v

    def value(self, states: np.ndarray) -> np.ndarray:
        return self._forward(tf.constant(states))[1].numpy()

    def greedy_scores(self, states):
        """What `play` takes as Q-values: logits, or a one-hot of the joystick mean's direction."""
        out = self.net(states, training=False)[0]
        if not self.joystick:
            return out
        return joystick_scores(out, self.directions, self.p.dead_zone)

    def _train_step(self, s, a, logp_old, adv, ret, v_old):
        p = self.p
        with tf.GradientTape() as tape:
            out, v = self.net(s, training=True)
            if self.joystick:
                mean, log_std = _gauss(out)
                logp = _gauss_logp(mean, log_std, a)
                entropy = tf.reduce_sum(log_std + 0.5 * np.log(2 * np.pi * np.e), axis=1)
            else:
                logp_all = tf.nn.log_softmax(out)
                logp = tf.gather(logp_all, a, axis=1, batch_dims=1)
                entropy = -tf.reduce_sum(tf.exp(logp_all) * logp_all, axis=1)
            if p.norm_adv:
                adv = (adv - tf.reduce_mean(adv)) / (tf.math.reduce_std(adv) + 1e-8)
            ratio = tf.exp(logp - logp_old)
            pg = -tf.reduce_mean(tf.minimum(ratio * adv, tf.clip_by_value(ratio, 1 - p.clip, 1 + p.clip) * adv))
            if p.clip_value:
                v_clip = v_old + tf.clip_by_value(v - v_old, -p.clip, p.clip)
                v_loss = 0.5 * tf.reduce_mean(tf.maximum((v - ret) ** 2, (v_clip - ret) ** 2))
            else:
                v_loss = 0.5 * tf.reduce_mean((v - ret) ** 2)
            ent = tf.reduce_mean(entropy)
            loss = pg + p.vf_coef * v_loss - p.ent_coef * ent
        self.opt.apply(tape.gradient(loss, self.net.trainable_variables))
        approx_kl = tf.reduce_mean((ratio - 1) - (logp - logp_old))
        return tf.stack([pg, v_loss, ent, approx_kl])

    def train(self, s, a, logp, adv, ret, v) -> np.ndarray:
        return self._train(tf.constant(s), tf.constant(a), tf.constant(logp), tf.constant(adv),
                           tf.constant(ret), tf.constant(v)).numpy()


def joystick_scores(out, directions: dict[str, int], dead_zone: float):
    """One-hot scores (batch, actions) of the direction the Gaussian's mean points to."""
    from .joystick import to_direction
    mean = np.asarray(out)[:, :2]
    scores = np.zeros((len(mean), len(directions)), np.float32)
    for i, (x, y) in enumerate(mean):
        scores[i, directions[to_direction(float(x), float(y), dead_zone)]] = 1.0
    return scores


def gae(rewards, values, dones, last_value, gamma: float, lam: float):
    """Advantages and returns, (T, n_envs): dones[t] = the episode ended at step t."""
    T = len(rewards)
    adv = np.zeros_like(rewards)
    last = np.zeros(rewards.shape[1], np.float32)
    for t in reversed(range(T)):
        nxt = last_value if t == T - 1 else values[t + 1]
        cont = 1.0 - dones[t]
        delta = rewards[t] + gamma * nxt * cont - values[t]
        last = delta + gamma * lam * cont * last
        adv[t] = last
    return adv, adv + values


@dataclass
class _PPOState:
    step: int = 0
    updates: int = 0
    episodes: int = 0
    next_episode: int = 0
    env_episodes: list[int] = field(default_factory=list)
    env_actions: list[list[int]] = field(default_factory=list)
    env_returns: list[float] = field(default_factory=list)
    recent_returns: list[float] = field(default_factory=list)
    best_eval: float = float("-inf")
    best_step: int = -1
    curve: list[dict] = field(default_factory=list)
    rng_state: dict = field(default_factory=dict)
    stopped_early: bool = False
    losses: list[list[float]] = field(default_factory=list)  # since the last evaluation


@dataclass
class PPOResult:
    agent: PPOAgent
    rollout: dict[str, np.ndarray]
    curve: list[dict]
    metrics: dict
    resumed_from: int = 0

    def write(self, out_dir: str) -> None:
        self.agent.net.save_weights(os.path.join(out_dir, "policy.weights.h5"))
        with h5py.File(os.path.join(out_dir, "rollout.h5"), "w") as f:
            for name, arr in self.rollout.items():
                f.create_dataset(name, data=arr)

    @property
    def embed_dim(self) -> int:
        return int(self.agent.net.get_layer(index=1).output.shape[-1])


class _Envs:
    """n envs, each on its own episode seed (episodes numbered in the order they start)."""

    def __init__(self, cfg: Config, spec: EnvSpec, st: _PPOState):
        self.cfg, self.spec, self.st = cfg, spec, st
        self.envs = [make_env(cfg.env, shaping=cfg.shaping) for _ in range(cfg.ppo.n_envs)]
        self.stacks = [FrameStack(spec) for _ in self.envs]
        self.states: list[np.ndarray] = [None] * len(self.envs)

    def start(self, i: int) -> None:
        st = self.st
        ep = st.next_episode
        st.next_episode += 1
        obs, _ = self.envs[i].reset(seed=episode_seed(self.cfg.seed, ep))
        self.states[i] = self.stacks[i].reset(obs)
        st.env_episodes[i], st.env_actions[i], st.env_returns[i] = ep, [], 0.0

    def restore(self, i: int) -> None:
        """Rebuild env i's episode under way from its seed and actions (a resumed run)."""
        st = self.st
        obs, _ = self.envs[i].reset(seed=episode_seed(self.cfg.seed, st.env_episodes[i]))
        self.states[i] = self.stacks[i].reset(obs)
        for a in st.env_actions[i]:
            obs = self.envs[i].step(self.spec.action_ids[a])[0]
            self.states[i] = self.stacks[i].push(obs)

    def step(self, i: int, a: int):
        obs, r, term, trunc, info = self.envs[i].step(self.spec.action_ids[a])
        self.st.env_actions[i].append(int(a))
        self.st.env_returns[i] += float(info.get("raw_reward", r))
        self.states[i] = self.stacks[i].push(obs)
        return float(r), bool(term), bool(trunc)

    def close(self) -> None:
        for e in self.envs:
            e.close()


def train_ppo(cfg: Config, spec: EnvSpec, workdir: str, ckpt, log: Callable[[str], None] = print,
              tb_dir: str | None = None) -> PPOResult:
    c, p = cfg.dqn, cfg.ppo
    if p.minibatches > p.n_envs * p.n_steps:
        raise ConfigError(f"key 'ppo.minibatches' ({p.minibatches}) exceeds a rollout's "
                          f"{p.n_envs * p.n_steps} steps (ppo.n_envs x ppo.n_steps)")
    keras.utils.set_random_seed(cfg.seed)
    agent = PPOAgent(cfg, spec)
    rng = np.random.default_rng(cfg.seed)
    n = p.n_envs
    st = _PPOState(env_episodes=[0] * n, env_actions=[[] for _ in range(n)], env_returns=[0.0] * n)
    ckdir = os.path.join(workdir, "ckpt")
    marker = ckpt.load(ckdir)
    best_weights = agent.net.get_weights()
    if marker is not None:
        agent.net.load_weights(os.path.join(ckdir, "policy.weights.h5"))
        with h5py.File(os.path.join(ckdir, "state.h5"), "r") as f:
            assign_arrays(agent.opt.variables, f["optimizer"], f"{ckdir}: optimizer state")
            best_weights = read_arrays(f["best"])
        with open(os.path.join(ckdir, "loop.json")) as f:
            st = _PPOState(**json.load(f))
        rng.bit_generator.state = st.rng_state
        log(f"[1-fit] resuming from checkpoint at step {st.step:,} ({st.episodes} episodes so far)")
    resumed_from = st.step
    envs = _Envs(cfg, spec, st)
    for i in range(n):
        if marker is not None:
            envs.restore(i)
        else:
            envs.start(i)
    per_update = n * p.n_steps
    total_updates = max(1, -(-(p.total_steps or c.total_steps) // per_update))
    writer = None
    if tb_dir:
        os.makedirs(tb_dir, exist_ok=True)
        writer = tf.summary.create_file_writer(tb_dir)
    prog = Progress(total_updates * per_update, "1-fit", start=st.step)
    t_last, step_last = time.time(), st.step
    losses = st.losses

    def evaluate() -> None:
        nonlocal best_weights, t_last, step_last
        res = play(agent.greedy_scores, cfg.env, spec, c.eval_episodes, seed=cfg.seed + 1_000_000 + st.step,
                   n_envs=min(c.eval_episodes, 8))
        failpoints.hit("1-fit.eval")
        mean = float(res.returns.mean())
        if mean > st.best_eval:
            st.best_eval, st.best_step = mean, st.step
            best_weights = agent.net.get_weights()
        now = time.time()
        sps = (st.step - step_last) / max(now - t_last, 1e-9)
        t_last, step_last = now, st.step
        m = np.mean(losses, 0) if losses else [float("nan")] * 4
        st.curve.append({"step": st.step, "episodes": st.episodes,
                         "train_return": float(np.mean(st.recent_returns)) if st.recent_returns else float("nan"),
                         "eval_return_mean": mean, "eval_return_std": float(res.returns.std()),
                         "policy_loss": float(m[0]), "value_loss": float(m[1]), "entropy": float(m[2]),
                         "approx_kl": float(m[3]), "steps_per_s": sps})
        losses.clear()
        if writer:
            with writer.as_default(step=st.step):
                tf.summary.scalar("charts/eval_return", mean)
                tf.summary.scalar("charts/SPS", sps)
            writer.flush()
        if p.stop_at_eval_return and mean >= p.stop_at_eval_return:
            st.stopped_early = True

    def checkpoint() -> None:
        os.makedirs(ckdir, exist_ok=True)
        agent.net.save_weights(os.path.join(ckdir, "policy.weights.h5"))
        with h5py.File(os.path.join(ckdir, "state.h5"), "w") as f:
            write_arrays(f.create_group("optimizer"), agent.opt.variables)
            write_arrays(f.create_group("best"), best_weights)
        st.rng_state = rng.bit_generator.state
        with open(os.path.join(ckdir, "loop.json"), "w") as f:
            json.dump(st.__dict__, f)
        ckpt.save(ckdir, st.step, {"episodes": st.episodes})

    obs_b = np.zeros((p.n_steps, n, *spec.obs_shape), spec.frame_dtype)
    act_b = np.zeros((p.n_steps, n, 2), np.float32) if agent.joystick else np.zeros((p.n_steps, n), np.int32)
    logp_b, val_b, rew_b, done_b = (np.zeros((p.n_steps, n), np.float32) for _ in range(4))
    while st.updates < total_updates and not st.stopped_early:
        if p.anneal_lr:
            agent.opt.lr.assign(p.lr * (1.0 - st.updates / total_updates))
        for t in range(p.n_steps):
            states = np.stack(envs.states)
            raw, logp, v = agent.sample(states, rng)
            acts = agent.env_action(raw)
            obs_b[t], act_b[t], logp_b[t], val_b[t] = states, raw, logp, v
            for i in range(n):
                r, term, trunc = envs.step(i, int(acts[i]))
                if trunc and not term:  # bootstrap the cut-off tail (SB3's rule)
                    r += p.gamma * float(agent.value(envs.states[i][None])[0])
                rew_b[t, i], done_b[t, i] = r, float(term or trunc)
                if term or trunc:
                    st.episodes += 1
                    st.recent_returns = (st.recent_returns + [st.env_returns[i]])[-20:]
                    envs.start(i)
            st.step += n
            failpoints.hit("1-fit.step")
        adv, ret = gae(rew_b, val_b, done_b, agent.value(np.stack(envs.states)), p.gamma, p.gae_lambda)
        flat = lambda x: x.reshape(per_update, *x.shape[2:])  # noqa: E731
        data = [flat(obs_b), flat(act_b), flat(logp_b), flat(adv), flat(ret), flat(val_b)]
        mb = per_update // p.minibatches
        for _ in range(p.epochs):
            order = rng.permutation(per_update)
            for k in range(p.minibatches):
                idx = order[k * mb:(k + 1) * mb]
                losses.append([float(x) for x in agent.train(*(x[idx] for x in data))])
        st.updates += 1
        crossed = lambda every: st.step // every > (st.step - per_update) // every  # noqa: E731
        if crossed(c.eval_every):
            evaluate()
        if crossed(c.checkpoint_every) and st.updates < total_updates and not st.stopped_early:
            checkpoint()
        prog.update(st.step, ret=st.recent_returns[-1] if st.recent_returns else 0.0, best_eval=st.best_eval)
    envs.close()
    if not st.curve or st.curve[-1]["step"] != st.step:
        evaluate()
    prog.close(best_eval=st.best_eval)
    shipped = st.step
    if p.keep_best and st.best_step >= 0:
        agent.net.set_weights(best_weights)
        shipped = st.best_step
    metrics = {
        **final_scores(agent.greedy_scores, cfg.env, spec, c.final_eval_episodes, cfg.seed,
                       cfg.env.win_threshold),
        "agent_steps": st.step, "episodes": st.episodes, "updates": st.updates,
        "shipped_weights_step": shipped, "best_periodic_eval": st.best_eval,
        "stopped_early": st.stopped_early,
    }
    rollout = {"obs": obs_b, "actions": act_b, "rewards": rew_b, "dones": done_b, "values": val_b,
               "logp": logp_b}
    return PPOResult(agent, rollout, st.curve, metrics, resumed_from)
