"""Offline Q-learning of a fresh head on embedded transitions (stage 4's refit).

The head is ReLU -> Dense(actions) above the cut, trained by DQN targets with a
target head, Huber loss and the stage-1 gamma on a fixed dataset (real, or real plus
generated). The whole loop runs inside one tf.function with stateless sampling, so a
refit of thousands of steps costs well under a second and is fixed by its seed.
"""
from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from .qnet import build_head


@dataclass
class Transitions:
    """Transitions in embedding space."""

    e_s: np.ndarray  # (N, D) float32
    action: np.ndarray  # (N,) int32
    reward: np.ndarray  # (N,) float32
    e_next: np.ndarray  # (N, D) float32
    terminal: np.ndarray  # (N,) float32 in {0, 1}

    def __len__(self) -> int:
        return len(self.action)

    @staticmethod
    def concat(parts: list["Transitions"]) -> "Transitions":
        parts = [p for p in parts if len(p)]
        return Transitions(*(np.concatenate([getattr(p, f) for p in parts]).astype(dt)
                             for f, dt in (("e_s", np.float32), ("action", np.int32),
                                           ("reward", np.float32), ("e_next", np.float32),
                                           ("terminal", np.float32))))

    def subset(self, idx: np.ndarray) -> "Transitions":
        return Transitions(self.e_s[idx], self.action[idx], self.reward[idx], self.e_next[idx],
                           self.terminal[idx])


@dataclass(frozen=True)
class RefitSettings:
    steps: int
    batch_size: int
    lr: float
    gamma: float
    target_update: int
    seed: int
    double_dqn: bool = True
    cql_alpha: float = 0.0
    average_from: float = 1.0  # average the head's weights over steps after this fraction (1 = off)
    ensemble: int = 1  # heads refit side by side, their weights averaged
    log_points: int = 10


@dataclass
class RefitResult:
    head: keras.Model
    td_loss: list[float]  # mean Huber loss over each of log_points windows
    q_mean: float  # mean max-Q over the data at the end (overestimation watch)


def refit_head(data: Transitions, n_actions: int, s: RefitSettings) -> RefitResult:
    """Refit `s.ensemble` fresh heads side by side (own init, own minibatches, one loop) and
    return their weight average. Q is linear in a head's weights, so the average of heads is
    itself a head: it has the architecture above the cut and the mean of their Q-values.
    Each head's weights are also averaged along its own trajectory after `average_from`.
    Offline Q-learning on frozen features drifts between good and poor policies from seed to
    seed; both averages damp that drift (quick profile: see the README's refit note)."""
    if len(data) == 0:
        raise ValueError("refit needs at least one transition")
    keras.utils.set_random_seed(s.seed)
    dim = data.e_s.shape[1]
    heads = [build_head(dim, n_actions, name=f"refit_head_{k}") for k in range(s.ensemble)]
    targets = [build_head(dim, n_actions, name=f"refit_target_{k}") for k in range(s.ensemble)]
    opts = [keras.optimizers.Adam(learning_rate=s.lr) for _ in heads]
    for h, t, o in zip(heads, targets, opts):
        t.set_weights(h.get_weights())
        o.build(h.trainable_variables)
    d = {k: tf.constant(getattr(data, k)) for k in ("e_s", "action", "reward", "e_next", "terminal")}
    n = len(data)
    window = max(1, s.steps // s.log_points)
    # Iterate averaging (Polyak & Juditsky 1992) of each head, at no extra cost.
    avgs = [[tf.Variable(v) for v in h.trainable_variables] for h in heads]
    avg_start = int(s.steps * s.average_from)

    def td_step(k, i, head, target, opt, avg):
        idx = tf.random.stateless_uniform([s.batch_size], seed=[s.seed + 7919 * k, i], maxval=n,
                                          dtype=tf.int32)
        e, a = tf.gather(d["e_s"], idx), tf.gather(d["action"], idx)
        r, e2, t = tf.gather(d["reward"], idx), tf.gather(d["e_next"], idx), tf.gather(d["terminal"], idx)
        q_next = target(e2, training=False)
        if s.double_dqn:  # van Hasselt et al. 2016: the online head picks, the target values
            v_next = tf.gather(q_next, tf.argmax(head(e2, training=False), axis=1,
                                                 output_type=tf.int32), axis=1, batch_dims=1)
        else:
            v_next = tf.reduce_max(q_next, axis=1)
        y = r + s.gamma * (1.0 - t) * v_next
        with tf.GradientTape() as tape:
            q_all = head(e, training=True)
            q = tf.gather(q_all, a, axis=1, batch_dims=1)
            err = tf.stop_gradient(y) - q
            loss = tf.reduce_mean(tf.where(tf.abs(err) <= 1.0, 0.5 * err ** 2, tf.abs(err) - 0.5))
            if s.cql_alpha > 0:  # CQL(H) (Kumar et al. 2020): push down actions the data lacks
                loss += s.cql_alpha * tf.reduce_mean(tf.reduce_logsumexp(q_all, axis=1) - q)
        grads = tape.gradient(loss, head.trainable_variables)
        opt.apply_gradients(zip(grads, head.trainable_variables))
        if (i + 1) % s.target_update == 0:
            for tv, hv in zip(target.trainable_variables, head.trainable_variables):
                tv.assign(hv)
        if i >= avg_start:
            c = tf.cast(i - avg_start + 1, tf.float32)
            for av, hv in zip(avg, head.trainable_variables):
                av.assign_add((hv - av) / c)
        return loss

    @tf.function
    def loop():
        losses = tf.TensorArray(tf.float32, size=s.steps)
        for i in tf.range(s.steps):
            step_losses = [td_step(k, i, *parts) for k, parts in
                           enumerate(zip(heads, targets, opts, avgs))]
            losses = losses.write(i, tf.add_n(step_losses) / len(step_losses))
        return losses.stack()

    losses = loop().numpy()
    head = heads[0]
    final = [(avg if avg_start < s.steps else h.trainable_variables) for h, avg in zip(heads, avgs)]
    for j, hv in enumerate(head.trainable_variables):
        hv.assign(tf.add_n([f[j] for f in final]) / len(final))
    td = [float(losses[i:i + window].mean()) for i in range(0, s.steps, window)]
    q_mean = float(tf.reduce_mean(tf.reduce_max(head(d["e_s"]), axis=1)))
    return RefitResult(head, td, q_mean)
