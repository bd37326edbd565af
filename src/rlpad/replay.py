"""Replay memory that stores each frame once and rebuilds stacked states by index.

One row per observed frame, in a ring buffer. Row i holds the frame of s_i and, when
`has_next[i]`, the transition (a_i, r_i, terminal_i) whose next state ends at row i+1.
An episode's last frame is a row without a transition. `terminals` is the flag learning
uses (the env's termination, or a lost life where the profile makes that terminal); the env's
own terminations and truncations and every lost life are kept apart (format v2; a v1 file's
are inferred from where its episodes end), so an export (Minari) is faithful. `pos[i]` is the
row's index in its episode, so the stack for row i is rows i-k, k < stack, clamped at the episode's
first row (the rule FrameStack uses while acting). An Atari replay of 400k rows holds
400k frames (2.6 GiB) instead of the seed's two 4-frame stacks per transition (21 GiB as laid
out; ~10.5 GiB in practice, since consecutive transitions shared arrays).
"""
from __future__ import annotations

import h5py
import numpy as np

FORMAT = "rlpad-replay"
VERSION = 2
READS = (1, 2)
ROW_ARRAYS = ("actions", "rewards", "terminals", "terminations", "truncations", "life_losses",
              "has_next", "pos")


_V1_ARRAYS = ("actions", "rewards", "terminals", "has_next", "pos")


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
        self.terminations = np.zeros(capacity, np.bool_)
        self.truncations = np.zeros(capacity, np.bool_)
        self.life_losses = np.zeros(capacity, np.bool_)
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
        self.terminations[i] = self.truncations[i] = self.life_losses[i] = False
        self.pos[i] = pos
        self.cursor = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)
        self.added += 1

    def start_episode(self, first_frame: np.ndarray) -> None:
        self._append(first_frame, 0)

    def add(self, action: int, reward: float, terminal: bool, next_frame: np.ndarray, *,
            terminated: bool | None = None, truncated: bool = False,
            life_lost: bool = False) -> None:
        """Record the transition from the newest row; `next_frame` becomes the newest row.
        terminal: for learning; terminated (default: terminal), truncated, life_lost: what
        the env reported."""
        last = (self.cursor - 1) % self.capacity
        if self.size == 0:
            raise RuntimeError("add() before start_episode()")
        self.actions[last], self.rewards[last] = action, reward
        self.terminals[last], self.has_next[last] = terminal, True
        self.terminations[last] = terminal if terminated is None else terminated
        self.truncations[last], self.life_losses[last] = truncated, life_lost
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

    def episodes(self) -> list[tuple[np.ndarray, bool]]:
        """Each episode held from its first frame, oldest first: (its rows, whether it is the
        episode that was under way when recording stopped, the newest). A leading episode
        whose first rows were overwritten, and an episode without a transition, are left out."""
        order = (self.oldest + np.arange(self.size)) % self.capacity
        starts = np.flatnonzero(self.pos[order] == 0)
        out = []
        for j, s in enumerate(starts):
            rows = order[s:starts[j + 1] if j + 1 < len(starts) else len(order)]
            if len(rows) >= 2:
                out.append((rows, j + 1 == len(starts)))
        return out

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
            for name in ROW_ARRAYS:
                f.create_dataset(name, data=getattr(self, name)[order], compression="gzip")

    @classmethod
    def load(cls, path: str, capacity: int | None = None) -> "ReplayMemory":
        with h5py.File(path, "r") as f:
            version = int(f.attrs.get("version", -1))
            if f.attrs.get("format") != FORMAT or version not in READS:
                raise ValueError(f"{path} is not an {FORMAT} file of a version read here "
                                 f"({', '.join(f'v{v}' for v in READS)})")
            size = f["frames"].shape[0]
            cap = max(capacity or int(f.attrs["capacity"]), size, 2)
            mem = cls(cap, f["frames"].shape[1:], f["frames"].dtype, int(f.attrs["stack"]))
            step = 16384
            for s in range(0, size, step):
                e = min(s + step, size)
                mem.frames[s:e] = f["frames"][s:e]
            for name in ROW_ARRAYS if version >= 2 else _V1_ARRAYS:
                getattr(mem, name)[:size] = f[name][...]
            mem.size, mem.cursor, mem.added = size, size % cap, int(f.attrs["added"])
        if version == 1:
            mem._infer_env_flags()
        return mem

    def _infer_env_flags(self) -> None:
        """A v1 file kept only the learning flag: an episode's last transition (a new episode
        follows it) terminated if it was terminal and was truncated if not; a terminal
        transition inside an episode lost a life. (Lives lost where the profile did not make
        them terminal were not recorded and stay unknown, as False.)"""
        if self.size == 0:
            return
        order = (self.oldest + np.arange(self.size)) % self.capacity
        t = order[self.has_next[order]]
        nxt = (t + 1) % self.capacity
        # an episode's last frame has no transition; the newest row is the episode under way
        ended = ~self.has_next[nxt] & (nxt != order[-1])
        self.terminations[t] = self.terminals[t] & ended
        self.truncations[t] = ~self.terminals[t] & ended
        self.life_losses[t] = self.terminals[t] & ~ended
