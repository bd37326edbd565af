"""Rows in and out of a generator: the stratified hold-out split, rows back to transitions."""
from __future__ import annotations

import numpy as np

from .common import GanError

def holdout_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified split of row indices into (train, holdout): about `fraction` of every class is
    held out (at least one row of a class with two or more, none of a singleton class)."""
    labels = np.asarray(labels).reshape(-1)
    rng = np.random.default_rng(seed)
    hold = []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        k = int(round(fraction * len(idx)))
        if fraction > 0 and len(idx) >= 2:
            k = min(max(k, 1), len(idx) - 1)
        hold.append(idx[:k])
    hold_idx = np.sort(np.concatenate(hold)) if hold else np.zeros(0, np.int64)
    mask = np.ones(len(labels), bool)
    mask[hold_idx] = False
    return np.flatnonzero(mask), hold_idx


def generator_rows(features: np.ndarray, rewards: np.ndarray, reward: str) -> np.ndarray:
    """What a generator fits: stage 2's [e(s), e(s') - e(s)], and with gan.reward = "feature"
    the reward as one more column (SynthER's joint (s, a, r, s', done), for shaped rewards)."""
    if reward == "feature":
        return np.concatenate([features, np.asarray(rewards, np.float32)[:, None]], axis=1)
    return features


def to_transitions(x: np.ndarray, labels: np.ndarray, class_table: np.ndarray,
                   embed_dim: int) -> dict[str, np.ndarray]:
    """Feature rows [e(s), e(s') - e(s)] (and a reward column, see generator_rows) + class ids
    -> embedding-space transitions: action int32, reward_sign float32 (-1/0/1), terminal bool;
    with the reward column, `reward`: its size with the class's sign (0 for a 0-reward class)."""
    x = np.asarray(x, np.float32)
    if x.ndim != 2 or x.shape[1] not in (2 * embed_dim, 2 * embed_dim + 1):
        raise GanError(f"to_transitions: x has shape {x.shape}, expected (n, {2 * embed_dim}) "
                       f"or, with a reward column, (n, {2 * embed_dim + 1})")
    labels = np.asarray(labels, np.int64)
    table = np.asarray(class_table)
    if table.ndim != 2 or table.shape[1] != 3:
        raise GanError(f"to_transitions: class_table must have shape (K, 3), got {table.shape}")
    if len(labels) and (labels.min() < 0 or labels.max() >= len(table)):
        raise GanError(f"to_transitions: labels must be in [0, {len(table)})")
    e_s = x[:, :embed_dim].copy()
    rows = table[labels]
    out = {
        "e_s": e_s,
        "e_next": e_s + x[:, embed_dim:2 * embed_dim],
        "action": rows[:, 0].astype(np.int32),
        "reward_sign": rows[:, 1].astype(np.float32),
        "terminal": rows[:, 2].astype(bool),
    }
    if x.shape[1] == 2 * embed_dim + 1:
        out["reward"] = out["reward_sign"] * np.abs(x[:, 2 * embed_dim])
    return out

