"""What every refit shares: transitions in embedding space, the result, the head's features."""
from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np

from ..qnet import build_head


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



@dataclass
class RefitResult:
    head: keras.Model
    td_loss: list[float]  # mean Huber loss over each of log_points windows (LSPI: per iteration)
    q_mean: float  # mean max-Q over the data at the end (overestimation watch)
    converged: bool = True  # LSPI: the greedy policy stopped changing



def features(x: np.ndarray) -> np.ndarray:
    """The head's input: relu(e) and a bias column (float64)."""
    return np.concatenate([np.maximum(x, 0), np.ones((len(x), 1))], 1).astype(np.float64)


def head_from(theta: np.ndarray, dim: int, n_actions: int) -> keras.Model:
    head = build_head(dim, n_actions, name="refit_head")
    head.set_weights([theta[:dim].astype(np.float32), theta[dim].astype(np.float32)])
    return head


def huber_td(phi, phi2, data: Transitions, g: np.ndarray, theta: np.ndarray) -> float:
    err = (phi @ theta)[np.arange(len(data)), data.action] - (data.reward + g * (phi2 @ theta).max(1))
    c = np.clip(err, -1.0, 1.0)
    return float(np.mean(c * (err - 0.5 * c)))
