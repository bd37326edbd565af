"""The seed's own refit (refit_method "seed"), kept to show its failure beside ours."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .data import RefitResult, Transitions, features, head_from


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
    phi, phi2 = features(data.e_s), features(data.e_next)
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
    head = head_from(np.nan_to_num(theta, nan=0.0, posinf=0.0, neginf=0.0), dim, n_actions)
    return RefitResult(head, losses, float((phi @ theta).max(1).mean()) if finite else float("nan"),
                       converged=finite)
