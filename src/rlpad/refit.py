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
    """Refit `s.ensemble` fresh heads side by side (own init, own minibatches) and return their
    weight average. A head is ReLU -> Dense(actions): Q is linear in its weights, so the average
    of heads is itself a head, with the mean of their Q-values. Each head's weights are also
    averaged along its own trajectory after `average_from` (Polyak & Juditsky 1992). Offline
    Q-learning on frozen features drifts between good and poor policies from seed to seed; both
    averages damp that drift (see the README's refit note). The K heads are one batched
    computation (weights of shape (K, D, A)), so the ensemble costs little more than one head."""
    if len(data) == 0:
        raise ValueError("refit needs at least one transition")
    k, dim, n = s.ensemble, data.e_s.shape[1], len(data)
    rng = np.random.default_rng(s.seed)
    limit = np.sqrt(6.0 / (dim + n_actions))  # Glorot uniform, as a fresh Keras Dense
    w = tf.Variable(rng.uniform(-limit, limit, (k, dim, n_actions)).astype(np.float32))
    b = tf.Variable(np.zeros((k, n_actions), np.float32))
    w_t, b_t = tf.Variable(w), tf.Variable(b)
    w_avg, b_avg = tf.Variable(w), tf.Variable(b)
    opt = keras.optimizers.Adam(learning_rate=s.lr)
    opt.build([w, b])
    d = {f: tf.constant(getattr(data, f)) for f in ("e_s", "action", "reward", "e_next", "terminal")}
    avg_start = int(s.steps * s.average_from)

    def q(e, w_, b_):  # (K, B, D) -> (K, B, A)
        return tf.einsum("kbd,kda->kba", tf.nn.relu(e), w_) + b_[:, None, :]

    @tf.function
    def loop():
        losses = tf.TensorArray(tf.float32, size=s.steps)
        for i in tf.range(s.steps):
            idx = tf.random.stateless_uniform([k, s.batch_size], seed=[s.seed, i], maxval=n,
                                              dtype=tf.int32)
            e, a = tf.gather(d["e_s"], idx), tf.gather(d["action"], idx)
            r, e2, t = tf.gather(d["reward"], idx), tf.gather(d["e_next"], idx), tf.gather(d["terminal"], idx)
            q_next = q(e2, w_t, b_t)
            if s.double_dqn:  # van Hasselt et al. 2016: the online head picks, the target values
                pick = tf.argmax(q(e2, w, b), axis=-1, output_type=tf.int32)
                v_next = tf.gather(q_next, pick, axis=2, batch_dims=2)
            else:
                v_next = tf.reduce_max(q_next, axis=-1)
            y = tf.stop_gradient(r + s.gamma * (1.0 - t) * v_next)
            with tf.GradientTape() as tape:
                q_all = q(e, w, b)
                q_a = tf.gather(q_all, a, axis=2, batch_dims=2)
                err = y - q_a
                per_head = tf.reduce_mean(tf.where(tf.abs(err) <= 1.0, 0.5 * err ** 2,
                                                   tf.abs(err) - 0.5), axis=1)
                if s.cql_alpha > 0:  # CQL(H) (Kumar et al. 2020): push down actions the data lacks
                    per_head += s.cql_alpha * tf.reduce_mean(
                        tf.reduce_logsumexp(q_all, axis=-1) - q_a, axis=1)
                loss = tf.reduce_sum(per_head)  # heads share no weights: each gets its own gradient
            opt.apply_gradients(zip(tape.gradient(loss, [w, b]), [w, b]))
            if (i + 1) % s.target_update == 0:
                w_t.assign(w)
                b_t.assign(b)
            if i >= avg_start:
                c = tf.cast(i - avg_start + 1, tf.float32)
                w_avg.assign_add((w - w_avg) / c)
                b_avg.assign_add((b - b_avg) / c)
            losses = losses.write(i, loss / k)
        return losses.stack()

    losses = loop().numpy()
    final_w, final_b = (w_avg, b_avg) if avg_start < s.steps else (w, b)
    head = build_head(dim, n_actions, name="refit_head")
    head.set_weights([tf.reduce_mean(final_w, axis=0).numpy(), tf.reduce_mean(final_b, axis=0).numpy()])
    window = max(1, s.steps // s.log_points)
    td = [float(losses[i:i + window].mean()) for i in range(0, s.steps, window)]
    q_mean = float(tf.reduce_mean(tf.reduce_max(head(d["e_s"]), axis=1)))
    return RefitResult(head, td, q_mean)
