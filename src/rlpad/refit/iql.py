"""Implicit Q-learning for the linear head, by least squares (refit_method "iql")."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .data import RefitResult, Transitions, features, head_from


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
    phi, phi2 = features(data.e_s), features(data.e_next)
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
    head = head_from(out, dim, n_actions)
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
