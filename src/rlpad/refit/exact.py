"""Exact least-squares refits of the linear head: LSPI and fitted Q iteration."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..qnet import build_head
from .data import RefitResult, Transitions, features, head_from, huber_td


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
    phi, phi2 = features(data.e_s), features(data.e_next)
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
        losses.append(huber_td(phi, phi2, data, g, theta))
    head = head_from(theta, dim, n_actions)
    return RefitResult(head, losses, float((phi @ theta).max(1).mean()), converged=stable >= 10)
