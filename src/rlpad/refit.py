"""Offline Q-learning of a fresh head on embedded transitions (stage 4's refit).

The head is ReLU -> Dense(actions) above the cut. `refit_head` (the default, `dqn`) trains it
by DQN targets with a target head, Huber loss and the stage-1 gamma on a fixed dataset (real,
or real plus generated); the whole loop is one tf.function with stateless sampling, traced once
per worker: 12k steps cost ~0.5 s on one core and are fixed by the seed. `lspi_head` (`lspi`)
solves for the same head exactly by least-squares policy iteration.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from .optim import ADAM_BETAS
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
    td_loss: list[float]  # mean Huber loss over each of log_points windows (LSPI: per iteration)
    q_mean: float  # mean max-Q over the data at the end (overestimation watch)
    converged: bool = True  # LSPI: the greedy policy stopped changing


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


@dataclass(frozen=True)
class LspiSettings:
    gamma: float
    ridge: float = 1e-3  # L2 penalty per transition (x N), which keeps small samples solvable
    max_iters: int = 20


def lspi_head(data: Transitions, n_actions: int, s: LspiSettings) -> RefitResult:
    """Least-squares policy iteration (Lagoudakis & Parr 2003) for the same linear head.

    Each iteration solves LSTD-Q exactly for the greedy policy of the last head: the head whose
    Q-values satisfy the projected Bellman equation of that policy on the data. It stops when
    the greedy policy on the data's next states no longer changes. No step size, minibatches
    or seed: the head is a function of the data alone, so two trials differ only by their data.
    Policy iteration with function approximation can cycle (small or generated-heavy samples
    do); then the last iterate is returned and `converged` is False. Averaging a cycle's heads
    did not score better on the quick grid.
    `td_loss` holds, per iteration, the mean Huber loss of the head against its own greedy
    one-step targets (the quantity the DQN refit logs)."""
    if len(data) == 0:
        raise ValueError("refit needs at least one transition")
    n, dim = len(data), data.e_s.shape[1]
    ones = np.ones((n, 1))
    phi = np.concatenate([np.maximum(data.e_s, 0), ones], 1).astype(np.float64)
    phi2 = np.concatenate([np.maximum(data.e_next, 0), ones], 1).astype(np.float64)
    g = s.gamma * (1.0 - data.terminal.astype(np.float64))
    d1, acts = dim + 1, range(n_actions)
    by_a = [data.action == a for a in acts]
    phi_a, phi2_a, g_a = ([x[m] for m in by_a] for x in (phi, phi2, g))  # rows taking action a
    # A = sum phi(s,a) [phi(s,a) - g phi(s', pi(s'))]^T in blocks (a, b) of size d1: the
    # constant part once, the policy part per iteration
    a_const = np.zeros((n_actions * d1, n_actions * d1))
    b_vec = np.zeros(n_actions * d1)
    for a in acts:
        blk = slice(a * d1, (a + 1) * d1)
        a_const[blk, blk] = phi_a[a].T @ phi_a[a] + s.ridge * n * np.eye(d1)
        b_vec[blk] = phi_a[a].T @ data.reward[by_a[a]]
    theta = np.zeros((d1, n_actions))
    pi_next, losses, converged = None, [], False
    for _ in range(s.max_iters):
        greedy = (phi2 @ theta).argmax(axis=1)
        if pi_next is not None and np.array_equal(greedy, pi_next):
            converged = True
            break
        pi_next = greedy
        mat = a_const.copy()
        for a in acts:
            nxt = greedy[by_a[a]]
            for b in acts:
                w = (g_a[a] * (nxt == b))[:, None]
                mat[a * d1:(a + 1) * d1, b * d1:(b + 1) * d1] -= phi_a[a].T @ (w * phi2_a[a])
        theta = np.linalg.solve(mat, b_vec).reshape(n_actions, d1).T
        q_next = phi2 @ theta
        err = (phi @ theta)[np.arange(n), data.action] - (data.reward + g * q_next.max(axis=1))
        c = np.clip(err, -1.0, 1.0)
        losses.append(float(np.mean(c * (err - 0.5 * c))))
    head = build_head(dim, n_actions, name="refit_head")
    head.set_weights([theta[:dim].astype(np.float32), theta[dim].astype(np.float32)])
    q_mean = float((phi @ theta).max(axis=1).mean())
    return RefitResult(head, losses, q_mean, converged=converged)


def _features(x: np.ndarray) -> np.ndarray:
    """The head's input: relu(e) and a bias column (float64)."""
    return np.concatenate([np.maximum(x, 0), np.ones((len(x), 1))], 1).astype(np.float64)


def _head_from(theta: np.ndarray, dim: int, n_actions: int) -> keras.Model:
    head = build_head(dim, n_actions, name="refit_head")
    head.set_weights([theta[:dim].astype(np.float32), theta[dim].astype(np.float32)])
    return head


def _huber_td(phi, phi2, data: Transitions, g: np.ndarray, theta: np.ndarray) -> float:
    err = (phi @ theta)[np.arange(len(data)), data.action] - (data.reward + g * (phi2 @ theta).max(1))
    c = np.clip(err, -1.0, 1.0)
    return float(np.mean(c * (err - 0.5 * c)))


@dataclass(frozen=True)
class FqiSettings:
    gamma: float
    ridge: float = 1e-3  # L2 penalty per transition (x N)
    iters: int = 200


def fqi_head(data: Transitions, n_actions: int, s: FqiSettings) -> RefitResult:
    """Exact fitted Q iteration (Ernst et al. 2005) for the linear head: from zero, each
    iteration solves the ridge regression of every action's Q on the greedy one-step targets
    of the last iterate - the offline fixed point that Q-learning with a target network
    approximates, without its step sizes or minibatches. `converged`: the greedy policy on the
    data's next states stopped changing over the last 10 iterations."""
    if len(data) == 0:
        raise ValueError("refit needs at least one transition")
    n, dim = len(data), data.e_s.shape[1]
    phi, phi2 = _features(data.e_s), _features(data.e_next)
    g = s.gamma * (1.0 - data.terminal.astype(np.float64))
    by_a = [data.action == a for a in range(n_actions)]
    solve = [np.linalg.solve(phi[m].T @ phi[m] + s.ridge * n * np.eye(dim + 1), phi[m].T)
             for m in by_a]
    theta = np.zeros((dim + 1, n_actions))
    losses, stable, last = [], 0, None
    for _ in range(s.iters):
        y = data.reward + g * (phi2 @ theta).max(1)
        for a, m in enumerate(by_a):
            theta[:, a] = solve[a] @ y[m]
        greedy = (phi2 @ theta).argmax(1)
        stable = stable + 1 if last is not None and np.array_equal(greedy, last) else 0
        last = greedy
        losses.append(_huber_td(phi, phi2, data, g, theta))
    head = _head_from(theta, dim, n_actions)
    return RefitResult(head, losses, float((phi @ theta).max(1).mean()), converged=stable >= 10)


@dataclass(frozen=True)
class SeedRefitSettings:
    """The seed's refit (rl-hypothesis-1): MSE loss, RMSprop (Keras 2: rho 0.9, eps outside
    the root), gamma 0.95, minibatch 50, targets from the net being trained (no target net),
    500k iterations in the seed."""

    steps: int
    seed: int
    lr: float = 2.5e-4
    gamma: float = 0.95
    batch_size: int = 50
    rho: float = 0.9
    eps: float = 1e-7  # Keras 2's RMSprop default
    log_points: int = 10


def seed_refit_step(theta, v, phi, phi2, r, g, a, s: SeedRefitSettings):
    """One update of the seed's refit on a minibatch, in numpy (theta: (dim+1, A)):
    y = r + gamma (1 - done) max_a' Q_theta(s', a') from the same theta (no target net);
    loss = mean over the batch of (Q_theta(s, a) - y)^2 (Keras' MSE on the one-hot-masked
    output: only the taken action's error counts, as the seed's target vector copied the
    other actions' own predictions); RMSprop on its gradient."""
    rows = np.arange(len(a))
    y = r + g * (phi2 @ theta).max(1)
    q = (phi @ theta)[rows, a]
    dq = np.zeros((len(a), theta.shape[1]))
    dq[rows, a] = 2.0 * (q - y) / (len(a) * theta.shape[1])  # Keras' MSE: mean over the outputs too
    grad = phi.T @ dq
    v = s.rho * v + (1 - s.rho) * grad * grad
    theta = theta - s.lr * grad / (np.sqrt(v) + s.eps)
    return theta, v, float(np.mean((q - y) ** 2))


def seed_head(data: Transitions, n_actions: int, s: SeedRefitSettings) -> RefitResult:
    """The seed's refit of a fresh head (Glorot-uniform weights, zero bias, as a fresh Keras
    Dense), fixed by s.seed. It diverges or stalls on most data: the README shows it beside
    the refits that work, on identical data."""
    if len(data) == 0:
        raise ValueError("refit needs at least one transition")
    rng = np.random.default_rng(s.seed)
    n, dim = len(data), data.e_s.shape[1]
    phi, phi2 = _features(data.e_s), _features(data.e_next)
    g = s.gamma * (1.0 - data.terminal.astype(np.float64))
    r = data.reward.astype(np.float64)
    limit = np.sqrt(6.0 / (dim + n_actions))
    theta = np.zeros((dim + 1, n_actions))
    theta[:dim] = rng.uniform(-limit, limit, (dim, n_actions))
    v = np.zeros_like(theta)
    window = max(1, s.steps // s.log_points)
    losses, acc, done = [], [], 0
    while done < s.steps:  # minibatch indices drawn in blocks: one rng call per block
        k = min(4096, s.steps - done)
        done += k
        for b in rng.integers(0, n, size=(k, s.batch_size)):
            theta, v, loss = seed_refit_step(theta, v, phi[b], phi2[b], r[b], g[b], data.action[b], s)
            acc.append(loss)
            if len(acc) == window:
                losses.append(float(np.mean(acc)))
                acc = []
    if acc:
        losses.append(float(np.mean(acc)))
    finite = bool(np.all(np.isfinite(theta)))
    head = _head_from(np.nan_to_num(theta, nan=0.0, posinf=0.0, neginf=0.0), dim, n_actions)
    return RefitResult(head, losses, float((phi @ theta).max(1).mean()) if finite else float("nan"),
                       converged=finite)


@dataclass(frozen=True)
class IqlSettings:
    gamma: float
    expectile: float = 0.7  # tau: 0.5 = the data's own policy's value (SARSA), -> 1 = in-sample max
    ridge: float = 1e-3
    iters: int = 100
    extract: str = "greedy"  # greedy on Q, or "awr": advantage-weighted regression of a policy
    beta: float = 3.0  # awr: inverse temperature on the advantage
    irls: int = 3  # reweighting passes of the expectile regression per iteration


def _weighted_ridge(phi: np.ndarray, y: np.ndarray, w: np.ndarray, lam: float) -> np.ndarray:
    a = (phi * w[:, None]).T @ phi + lam * np.eye(phi.shape[1])
    return np.linalg.solve(a, (phi * w[:, None]).T @ y)


def iql_head(data: Transitions, n_actions: int, s: IqlSettings) -> RefitResult:
    """Implicit Q-learning (Kostrikov et al. 2022) for the linear head, solved by least squares:
    V(s) is the tau-expectile of Q(s, a) over the data's own actions (asymmetric least squares
    by iteratively reweighted ridge regression), and Q(s, a) regresses r + gamma V(s'). No max
    over actions the data lacks: the values stay in-sample. The head then acts greedily on Q,
    or (extract = "awr") is a linear softmax policy fit to the data's actions weighted by
    exp(beta (Q - V)) (advantage-weighted regression; its logits play as the head's output)."""
    if len(data) == 0:
        raise ValueError("refit needs at least one transition")
    n, dim = len(data), data.e_s.shape[1]
    phi, phi2 = _features(data.e_s), _features(data.e_next)
    g = s.gamma * (1.0 - data.terminal.astype(np.float64))
    r = data.reward.astype(np.float64)
    rows = np.arange(n)
    by_a = [data.action == a for a in range(n_actions)]
    lam = s.ridge * n
    solve = [np.linalg.solve(phi[m].T @ phi[m] + lam * np.eye(dim + 1), phi[m].T) for m in by_a]
    theta, w_v = np.zeros((dim + 1, n_actions)), np.zeros(dim + 1)
    losses = []
    for _ in range(s.iters):
        y = r + g * (phi2 @ w_v)
        for a, m in enumerate(by_a):
            theta[:, a] = solve[a] @ y[m]
        q = (phi @ theta)[rows, data.action]
        for _ in range(s.irls):  # the tau-expectile of q given phi
            wt = np.where(q < phi @ w_v, 1.0 - s.expectile, s.expectile)
            w_v = _weighted_ridge(phi, q, wt, lam)
        losses.append(float(np.mean((q - y) ** 2)))
    if s.extract == "awr":
        adv = (phi @ theta)[rows, data.action] - phi @ w_v
        weight = np.minimum(np.exp(s.beta * (adv - adv.max())) * np.exp(s.beta * adv.max()), 100.0)
        logits = _softmax_regression(phi, data.action, n_actions, weight, lam)
        out = logits
    else:
        out = theta
    head = _head_from(out, dim, n_actions)
    return RefitResult(head, losses, float((phi @ theta).max(1).mean()))


def _softmax_regression(phi, actions, n_actions: int, weight, lam: float, iters: int = 30):
    """Weighted multinomial logistic regression by Newton's method (block-diagonal Hessian
    approximation per action): the logits' weights, (dim+1, A)."""
    w = np.zeros((phi.shape[1], n_actions))
    onehot = np.eye(n_actions)[actions]
    for _ in range(iters):
        z = phi @ w
        p = np.exp(z - z.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        for a in range(n_actions):
            grad = phi.T @ (weight * (p[:, a] - onehot[:, a])) + lam * w[:, a]
            hess = (phi * (weight * p[:, a] * (1 - p[:, a]))[:, None]).T @ phi + lam * np.eye(phi.shape[1])
            w[:, a] -= np.linalg.solve(hess, grad)
    return w
