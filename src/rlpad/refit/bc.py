"""Behaviour cloning of the data's actions by the linear head (refit_method "bc")."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .data import RefitResult, Transitions, head_from


@dataclass(frozen=True)
class BcSettings:
    ridge: float = 1e-3  # L2 penalty on the standardised weights (the bias is free)
    max_iter: int = 5000
    tol: float = 1e-9


def bc_head(data: Transitions, n_actions: int, s: BcSettings) -> RefitResult:
    """A softmax policy pi(a|s) proportional to exp(w_a . relu(e(s)) + b_a) fit to the data's
    actions: mean cross-entropy + ridge/2 |w|^2 over standardised features, a convex problem
    solved to tolerance by L-BFGS, so the head is a function of the data alone (no refit seed).
    Rewards and next states are not used: on data of one good policy (the `policy` dataset
    kind) imitation is the refit whose optimum is that policy. The head's outputs are logits;
    play is greedy on them."""
    from scipy.optimize import minimize

    if len(data) == 0:
        raise ValueError("refit needs at least one transition")
    x = np.maximum(data.e_s.astype(np.float64), 0.0)
    n, dim = x.shape
    mu, sd = x.mean(0), x.std(0)
    sd[sd < 1e-8] = 1.0  # a constant (dead) unit: its weight only moves the bias
    z = (x - mu) / sd
    onehot = np.eye(n_actions)[data.action]
    k = dim * n_actions

    def loss_grad(p: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = p[:k].reshape(dim, n_actions), p[k:]
        logits = z @ w + b
        logits -= logits.max(1, keepdims=True)
        lse = np.log(np.exp(logits).sum(1, keepdims=True))
        prob = np.exp(logits - lse)
        loss = -np.mean((onehot * (logits - lse)).sum(1)) + 0.5 * s.ridge * np.sum(w * w)
        d = (prob - onehot) / n
        return loss, np.concatenate([(z.T @ d + s.ridge * w).ravel(), d.sum(0)])

    res = minimize(loss_grad, np.zeros(k + n_actions), jac=True, method="L-BFGS-B",
                   options={"maxiter": s.max_iter, "gtol": s.tol, "ftol": s.tol})
    w, b = res.x[:k].reshape(dim, n_actions), res.x[k:]
    theta = np.vstack([w / sd[:, None], (b - (mu / sd) @ w)[None]])  # back to relu(e) units
    q_mean = float((x @ theta[:dim] + theta[dim]).max(1).mean())  # mean top logit here
    return RefitResult(head_from(theta, dim, n_actions), [float(res.fun)], q_mean,
                       converged=bool(res.success))
