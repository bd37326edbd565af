"""Offline DQN by SGD for the head (refit_method "dqn"): the loop as one tf.function."""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from ..optim import ADAM_BETAS
from ..qnet import build_head
from .data import RefitResult, Transitions


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


def refit_head(data: Transitions, n_actions: int, s: RefitSettings) -> RefitResult:
    """Refit `s.ensemble` fresh heads side by side (own init, shared minibatches) and return
    their weight average. A head is ReLU -> Dense(actions): Q is linear in its weights, so the
    average of heads is itself a head, with the mean of their Q-values. Each head's weights are
    also averaged along its own trajectory after `average_from` (Polyak & Juditsky 1992).
    Offline Q-learning on frozen features drifts between good and poor policies from seed to
    seed; both averages damp that drift (see the README's refit note)."""
    if len(data) == 0:
        raise ValueError("refit needs at least one transition")
    k, dim, n, n_a = s.ensemble, data.e_s.shape[1], len(data), n_actions
    rng = np.random.default_rng(s.seed)
    limit = np.sqrt(6.0 / (dim + n_a))  # Glorot uniform, as a fresh Keras Dense; zero bias
    theta0 = np.zeros((dim + 1, k * n_a), np.float32)  # the K heads side by side, bias as last row
    theta0[:dim] = rng.uniform(-limit, limit, (dim, k * n_a))
    ones = np.ones((n, 1), np.float32)
    rows = np.concatenate([np.maximum(data.e_s, 0), ones, np.maximum(data.e_next, 0), ones,
                           data.reward[:, None], s.gamma * (1.0 - data.terminal[:, None]),
                           np.eye(n_a, dtype=np.float32)[data.action]], axis=1)
    b1, b2 = ADAM_BETAS
    t = np.arange(1, s.steps + 1, dtype=np.float64)
    alpha = s.lr * np.sqrt(1 - b2 ** t) / (1 - b1 ** t)  # Adam's bias-corrected step sizes
    n_periods = -(-s.steps // s.target_update)
    # averaging starts at the target sync nearest to average_from (1.0: off)
    p_avg = min(n_periods, int(round(s.steps * s.average_from / s.target_update)))
    loop = _refit_loop(dim, n_a, k, s.batch_size, s.steps, s.target_update, p_avg,
                       s.double_dqn, float(s.cql_alpha))
    final, losses = loop(tf.constant(rows.astype(np.float32)), tf.constant(alpha.astype(np.float32)),
                         tf.constant(theta0), tf.constant(s.seed % 2**31, tf.int32))
    final = final.numpy().reshape(dim + 1, k, n_a).mean(axis=1)  # the heads' average
    head = build_head(dim, n_a, name="refit_head")
    head.set_weights([final[:dim], final[dim]])
    losses = losses.numpy()
    window = max(1, s.steps // s.log_points)
    td = [float(losses[i:i + window].mean()) for i in range(0, s.steps, window)]
    q_mean = float(tf.reduce_mean(tf.reduce_max(head(data.e_s), axis=1)))
    return RefitResult(head, td, q_mean)


@functools.lru_cache(maxsize=16)
def _refit_loop(dim: int, n_a: int, k: int, bs: int, steps: int, tu: int, p_avg: int,
                double_dqn: bool, cql_alpha: float):
    """The refit loop as one tf.function, traced once per settings and reused by every trial
    of a worker (tracing costs ~0.2 s, a third of a refit).

    The loop costs TF ops per step, not FLOPs (a step moves a few tens of kB), so whatever does
    not change is computed outside: one packed row per transition [relu(e_s), 1, relu(e_next),
    1, r, gamma * (1 - terminal), onehot(a)]; one gather and three 2-D matmuls per step serve
    all K heads (they share each minibatch and differ by their init); gradients by hand (Q is
    linear in theta); target syncs and averaging are loop boundaries, not conditionals."""
    split = [dim + 1, dim + 1, 1, 1, n_a]
    (b1, b2), eps = ADAM_BETAS, 1e-7  # Keras' Adam defaults
    n_periods = -(-steps // tu)

    def period(rows_all, alpha, seed, p, theta, m, v, avg, n_avg, losses, averaging: bool):
        """One target period: up to `tu` Adam steps against a fixed target theta_t = theta."""
        theta_t, start = theta, p * tu
        length = tf.minimum(tu, steps - start)
        idx = tf.random.stateless_uniform(tf.stack([length, bs]), seed=tf.stack([seed, p]),
                                          maxval=tf.shape(rows_all)[0], dtype=tf.int32)
        for j in tf.range(length):
            phi, phi2, r, g, oh = tf.split(tf.gather(rows_all, idx[j]), split, axis=1)
            oh = oh[:, None, :]  # (B, 1, A): the same action for each head
            q_next = tf.reshape(tf.matmul(phi2, tf.concat([theta_t, theta], axis=1)),
                                [bs, 2, k, n_a])
            if double_dqn:  # van Hasselt et al. 2016: the online head picks, the target values
                pick = tf.one_hot(tf.argmax(q_next[:, 1], axis=-1), n_a)
                v_next = tf.reduce_sum(q_next[:, 0] * pick, axis=-1)
            else:
                v_next = tf.reduce_max(q_next[:, 0], axis=-1)
            q = tf.reshape(tf.matmul(phi, theta), [bs, k, n_a])
            err = tf.reduce_sum(q * oh, axis=-1) - (r + g * v_next)  # (B, K)
            c = tf.clip_by_value(err, -1.0, 1.0)  # the Huber loss' derivative
            dq = oh * c[..., None]
            if cql_alpha > 0:  # CQL(H) (Kumar et al. 2020): push down actions the data lacks
                dq += cql_alpha * (tf.nn.softmax(q) - oh)
            # B x the mean loss' gradient: Adam is invariant to that scale but for its eps,
            # so eps x B keeps the update Adam's on the mean loss
            grad = tf.matmul(phi, tf.reshape(dq, [bs, k * n_a]), transpose_a=True)
            m = m + (grad - m) * (1 - b1)
            v = v + (grad * grad - v) * (1 - b2)
            theta = theta - alpha[start + j] * m / (tf.sqrt(v) + eps * bs)
            if averaging:
                n_avg += 1.0
                avg = avg + (theta - avg) / n_avg
            # the mean Huber loss, from its derivative
            losses = losses.write(start + j, tf.reduce_sum(c * (err - 0.5 * c)) / (k * bs))
        return theta, m, v, avg, n_avg, losses

    @tf.function(input_signature=[tf.TensorSpec([None, 2 * dim + 4 + n_a], tf.float32),
                                  tf.TensorSpec([steps], tf.float32),
                                  tf.TensorSpec([dim + 1, k * n_a], tf.float32),
                                  tf.TensorSpec([], tf.int32)])
    def loop(rows_all, alpha, theta0, seed):
        theta, m, v = theta0, tf.zeros_like(theta0), tf.zeros_like(theta0)
        avg, n_avg = theta0, tf.constant(0.0)
        losses = tf.TensorArray(tf.float32, size=steps)
        for p in tf.range(p_avg):
            theta, m, v, avg, n_avg, losses = period(rows_all, alpha, seed, p, theta, m, v, avg,
                                                     n_avg, losses, averaging=False)
        for p in tf.range(p_avg, n_periods):
            theta, m, v, avg, n_avg, losses = period(rows_all, alpha, seed, p, theta, m, v, avg,
                                                     n_avg, losses, averaging=True)
        return (avg if p_avg < n_periods else theta), losses.stack()

    return loop
