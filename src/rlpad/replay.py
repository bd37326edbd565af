"""Replay memory that stores each frame once and rebuilds stacked states by index.

One row per observed frame, in a ring buffer. Row i holds the frame of s_i and, when
`has_next[i]`, the transition (a_i, r_i, terminal_i) whose next state ends at row i+1.
An episode's last frame is a row without a transition. `pos[i]` is the row's index in
its episode, so the stack for row i is rows i-k, k < stack, clamped at the episode's
first row (the rule FrameStack uses while acting). An Atari replay of 400k rows holds
400k frames (2.6 GiB) instead of the seed's two 4-frame stacks per transition (21 GiB as laid
out; ~10.5 GiB in practice, since consecutive transitions shared arrays).
"""
from __future__ import annotations

import h5py
import numpy as np

FORMAT = "rlpad-replay"
VERSION = 1


class ReplayMemory:
    def __init__(self, capacity: int, frame_shape: tuple[int, ...], frame_dtype, stack: int):
        if capacity < 2:
            raise ValueError("replay capacity must be >= 2 (dqn.buffer_size)")
        self.capacity, self.stack = int(capacity), int(stack)
        self.frame_shape, self.frame_dtype = tuple(frame_shape), np.dtype(frame_dtype)
        self.frames = np.zeros((capacity, *frame_shape), dtype=self.frame_dtype)
        self.actions = np.zeros(capacity, np.int32)
        self.rewards = np.zeros(capacity, np.float32)
        self.terminals = np.zeros(capacity, np.bool_)
        self.has_next = np.zeros(capacity, np.bool_)
        self.pos = np.zeros(capacity, np.int32)
        self.cursor = 0  # next row to write
        self.size = 0  # rows held
        self.added = 0  # rows ever written

    # ---- writing ------------------------------------------------------------------------
    def _append(self, frame: np.ndarray, pos: int) -> None:
        i = self.cursor
        self.frames[i] = frame
        self.actions[i], self.rewards[i] = 0, 0.0
        self.terminals[i] = self.has_next[i] = False
        self.pos[i] = pos
        self.cursor = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)
        self.added += 1

    def start_episode(self, first_frame: np.ndarray) -> None:
        self._append(first_frame, 0)

    def add(self, action: int, reward: float, terminal: bool, next_frame: np.ndarray) -> None:
        """Record the transition from the newest row; `next_frame` becomes the newest row."""
        last = (self.cursor - 1) % self.capacity
        if self.size == 0:
            raise RuntimeError("add() before start_episode()")
        self.actions[last], self.rewards[last] = action, reward
        self.terminals[last], self.has_next[last] = terminal, True
        self._append(next_frame, int(self.pos[last]) + 1)

    # ---- reading ------------------------------------------------------------------------
    @property
    def oldest(self) -> int:
        return self.cursor if self.size == self.capacity else 0

    def valid(self, idx: np.ndarray) -> np.ndarray:
        """Rows that start a transition whose whole stack is still held."""
        idx = np.asarray(idx)
        behind = (idx - self.oldest) % self.capacity  # rows held before idx
        need = np.minimum(self.stack - 1, self.pos[idx])
        nxt = (idx + 1) % self.capacity
        return self.has_next[idx] & (need <= behind) & (nxt != self.cursor)

    def states(self, idx: np.ndarray) -> np.ndarray:
        """Stacked states ending at rows idx: (n, stack, *frame) or (n, stack*dim) for vectors."""
        idx = np.asarray(idx)
        lags = np.arange(self.stack - 1, -1, -1)  # oldest frame first
        rows = (idx[:, None] - np.minimum(lags[None, :], self.pos[idx][:, None])) % self.capacity
        out = self.frames[rows]
        if len(self.frame_shape) == 1:
            out = out.reshape(len(idx), -1)
        elif self.stack == 1:  # an unstacked image state is its frame (EnvSpec.obs_shape)
            out = out[:, 0]
        return out

    def transition_rows(self) -> np.ndarray:
        """All valid transition rows, oldest first."""
        order = (self.oldest + np.arange(self.size)) % self.capacity
        return order[self.valid(order)]

    def sample_rows(self, rng: np.random.Generator, n: int) -> np.ndarray:
        out = np.empty(0, np.int64)
        for _ in range(100):
            cand = (self.oldest + rng.integers(0, self.size, size=2 * n + 8)) % self.capacity
            out = np.concatenate([out, cand[self.valid(cand)]])
            if len(out) >= n:
                return out[:n]
        raise RuntimeError("replay holds too few valid transitions to sample from")

    def sample(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, ...]:
        idx = self.sample_rows(rng, n)
        nxt = (idx + 1) % self.capacity
        return (self.states(idx), self.actions[idx], self.rewards[idx],
                self.states(nxt), self.terminals[idx].astype(np.float32))

    def n_transitions(self) -> int:
        order = (self.oldest + np.arange(self.size)) % self.capacity
        return int(self.valid(order).sum())

    # ---- HDF5 ---------------------------------------------------------------------------
    def save(self, path: str, compression_level: int = 1) -> None:
        """Rows oldest first, frames gzip-compressed per row chunk."""
        order = (self.oldest + np.arange(self.size)) % self.capacity
        with h5py.File(path, "w") as f:
            f.attrs.update(format=FORMAT, version=VERSION, stack=self.stack,
                           capacity=self.capacity, added=self.added)
            chunk = (min(max(self.size, 1), 256), *self.frame_shape)
            d = f.create_dataset("frames", shape=(self.size, *self.frame_shape),
                                 dtype=self.frame_dtype, chunks=chunk, compression="gzip",
                                 compression_opts=compression_level, shuffle=True)
            step = 16384  # write in slabs: no full reordered copy in RAM
            for s in range(0, self.size, step):
                e = min(s + step, self.size)
                d[s:e] = self.frames[order[s:e]]
            for name in ("actions", "rewards", "terminals", "has_next", "pos"):
                f.create_dataset(name, data=getattr(self, name)[order], compression="gzip")

    @classmethod
    def load(cls, path: str, capacity: int | None = None) -> "ReplayMemory":
        with h5py.File(path, "r") as f:
            if f.attrs.get("format") != FORMAT or int(f.attrs.get("version", -1)) != VERSION:
                raise ValueError(f"{path} is not an {FORMAT} v{VERSION} file")
            size = f["frames"].shape[0]
            cap = max(capacity or int(f.attrs["capacity"]), size, 2)
            mem = cls(cap, f["frames"].shape[1:], f["frames"].dtype, int(f.attrs["stack"]))
            step = 16384
            for s in range(0, size, step):
                e = min(s + step, size)
                mem.frames[s:e] = f["frames"][s:e]
            for name in ("actions", "rewards", "terminals", "has_next", "pos"):
                getattr(mem, name)[:size] = f[name][...]
            mem.size, mem.cursor, mem.added = size, size % cap, int(f.attrs["added"])
        return mem
