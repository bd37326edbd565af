"""Stage 2's algorithm: embed replay transitions at the Q-net's cut.

A transition becomes x = [e(s), e(s') - e(s)] (the seed's features) with a class label
for (action, reward sign, terminal). The class table is the full product of those
three, so every subset of the data (a trial's sample) shares the same class ids.
"""
from __future__ import annotations

from dataclasses import dataclass

import h5py
import numpy as np
import tensorflow as tf

from .qnet import QNet
from .replay import ReplayMemory

FORMAT = "rlpad-embeddings"
VERSION = 1
CLASS_COLUMNS = ("action", "reward_sign", "terminal")


def class_table(n_actions: int) -> np.ndarray:
    """(K, 3) int32 rows (action, reward sign in {-1,0,1}, terminal in {0,1}); K = 6 * actions."""
    rows = [(a, s, t) for a in range(n_actions) for s in (-1, 0, 1) for t in (0, 1)]
    return np.asarray(rows, np.int32)


def class_ids(actions: np.ndarray, rewards: np.ndarray, terminals: np.ndarray) -> np.ndarray:
    sign = np.sign(rewards).astype(np.int64) + 1  # 0, 1, 2
    return ((actions.astype(np.int64) * 3 + sign) * 2 + terminals.astype(np.int64)).astype(np.int32)


@dataclass
class Embedded:
    features: np.ndarray  # (N, 2D) float32, clipped as configured
    labels: np.ndarray  # (N,) int32
    actions: np.ndarray
    rewards: np.ndarray
    terminals: np.ndarray
    rows: np.ndarray  # replay rows of s, for traceability
    class_table: np.ndarray
    embed_dim: int
    clip_fraction_embedding: float
    clip_fraction_delta: float

    def save(self, path: str, attrs: dict) -> None:
        mean = self.features.mean(axis=0)
        std = self.features.std(axis=0)
        counts = np.bincount(self.labels, minlength=len(self.class_table))
        with h5py.File(path, "w") as f:
            f.attrs.update(format=FORMAT, version=VERSION, embed_dim=self.embed_dim,
                           class_columns=",".join(CLASS_COLUMNS),
                           clip_fraction_embedding=self.clip_fraction_embedding,
                           clip_fraction_delta=self.clip_fraction_delta, **attrs)
            f.create_dataset("features", data=self.features, compression="gzip", compression_opts=1,
                             chunks=(min(len(self.features), 4096), self.features.shape[1]))
            for name in ("labels", "actions", "rewards", "terminals", "rows", "class_table"):
                f.create_dataset(name, data=getattr(self, name))
            f.create_dataset("class_counts", data=counts)
            f.create_dataset("norm_mean", data=mean.astype(np.float32))
            f.create_dataset("norm_std", data=std.astype(np.float32))

    @classmethod
    def load(cls, path: str) -> "Embedded":
        with h5py.File(path, "r") as f:
            if f.attrs.get("format") != FORMAT or int(f.attrs.get("version", -1)) != VERSION:
                raise ValueError(f"{path} is not an {FORMAT} v{VERSION} file")
            return cls(features=f["features"][...], labels=f["labels"][...],
                       actions=f["actions"][...], rewards=f["rewards"][...],
                       terminals=f["terminals"][...], rows=f["rows"][...],
                       class_table=f["class_table"][...], embed_dim=int(f.attrs["embed_dim"]),
                       clip_fraction_embedding=float(f.attrs["clip_fraction_embedding"]),
                       clip_fraction_delta=float(f.attrs["clip_fraction_delta"]))


def embed_states(qnet: QNet, states_fn, n: int, batch_size: int, progress=None) -> np.ndarray:
    """e(s) for n states fetched in batches by states_fn(start, stop); tf.function, no predict."""
    enc = tf.function(lambda s: qnet.encoder(s, training=False), reduce_retracing=True)
    out = np.empty((n, qnet.embed_dim), np.float32)
    for start in range(0, n, batch_size):
        stop = min(n, start + batch_size)
        out[start:stop] = enc(states_fn(start, stop)).numpy()
        if progress:
            progress(stop)
    return out


def embed_replay(qnet: QNet, replay: ReplayMemory, batch_size: int, clip_embedding: float,
                 clip_delta: float, progress=None, window: int = 0) -> Embedded:
    """window > 0: only the newest `window` transitions (a recency window, as a FIFO replay
    of that size would hold at the end of training)."""
    # Embed every held row once (each state once), then pair rows t and t+1.
    order = (replay.oldest + np.arange(replay.size)) % replay.capacity
    e_all = embed_states(qnet, lambda a, b: replay.states(order[a:b]), len(order), batch_size, progress)
    pos_of_row = np.empty(replay.capacity, np.int64)
    pos_of_row[order] = np.arange(len(order))
    rows = order[replay.valid(order)]
    if window:
        rows = rows[-window:]
    e_s = e_all[pos_of_row[rows]]
    e_next = e_all[pos_of_row[(rows + 1) % replay.capacity]]
    delta = e_next - e_s
    clip_e = float(np.mean(np.abs(e_s) > clip_embedding)) if clip_embedding > 0 else 0.0
    clip_d = float(np.mean(np.abs(delta) > clip_delta)) if clip_delta > 0 else 0.0
    if clip_embedding > 0:
        e_s = np.clip(e_s, -clip_embedding, clip_embedding)
    if clip_delta > 0:
        delta = np.clip(delta, -clip_delta, clip_delta)
    actions, rewards = replay.actions[rows], replay.rewards[rows]
    terminals = replay.terminals[rows]
    return Embedded(
        features=np.concatenate([e_s, delta], axis=1).astype(np.float32),
        labels=class_ids(actions, rewards, terminals), actions=actions, rewards=rewards,
        terminals=terminals, rows=rows.astype(np.int64), class_table=class_table(qnet.head.output.shape[-1]),
        embed_dim=qnet.embed_dim, clip_fraction_embedding=clip_e, clip_fraction_delta=clip_d)


def cut_check(full: QNet, cut: QNet, states: np.ndarray) -> float:
    """max |head(encoder(s)) - Q(s)| between the separately built halves and the full net."""
    q_full = full.model(states, training=False).numpy()
    q_cut = cut.head(cut.encoder(states, training=False), training=False).numpy()
    return float(np.max(np.abs(q_full - q_cut)))
