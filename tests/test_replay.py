"""rlpad.replay.ReplayMemory: frames stored once, stacks rebuilt by index.

A simulated actor writes episodes of synthetic frames into the replay while keeping its own
`FrameStack` (the one acting uses) and a record of every transition under its global write
index. The replay must rebuild exactly those stacked states, sample only transitions whose
whole stack is still held (through ring wrap-around), and survive an HDF5 round trip.
"""
from __future__ import annotations

import h5py
import numpy as np
import pytest

from rlpad.envs import EnvSpec, FrameStack
from rlpad.replay import ReplayMemory

IMG = EnvSpec(frame_shape=(84, 84), frame_dtype=np.dtype(np.uint8), stack=4, n_actions=3,
              action_ids=(1, 2, 3))
VEC = EnvSpec(frame_shape=(4,), frame_dtype=np.dtype(np.float32), stack=1, n_actions=2,
              action_ids=(0, 1))
VEC3 = EnvSpec(frame_shape=(3,), frame_dtype=np.dtype(np.float32), stack=3, n_actions=2,
               action_ids=(0, 1))
# Episode lengths (transitions): shorter than the stack, equal to it, longer; a few
# "life lost" terminals that do not end the episode (the Atari case).
EPISODES = [1, 2, 3, 4, 9, 17, 1, 5, 30, 2, 11, 6, 3, 25, 8, 1, 14, 7]


class Sim:
    """Writes episodes into a replay and records what acting saw (by global row index)."""

    def __init__(self, spec: EnvSpec, capacity: int, seed: int = 0):
        self.spec = spec
        self.mem = ReplayMemory(capacity, spec.frame_shape, spec.frame_dtype, spec.stack)
        self.rng = np.random.default_rng(seed)
        self.fs = FrameStack(spec)
        self.g = 0  # global index of the next row written
        self.dropped = 0  # rows before this were lost outside the ring (a load trims them)
        self.pos: dict[int, int] = {}  # global row -> index in its episode
        self.trans: dict[int, tuple] = {}  # global row -> (s, a, r, terminal, s2)

    def frame(self) -> np.ndarray:
        if self.spec.frame_dtype == np.uint8:
            return self.rng.integers(0, 256, self.spec.frame_shape, dtype=np.uint8)
        return self.rng.standard_normal(self.spec.frame_shape).astype(np.float32)

    def episode(self, n: int, terminal_at_end: bool = True) -> None:
        f = self.frame()
        s = self.fs.reset(f)
        self.mem.start_episode(f)
        self.pos[self.g] = 0
        self.g += 1
        for t in range(n):
            a = int(self.rng.integers(self.spec.n_actions))
            r = float(self.rng.integers(-1, 3))
            terminal = (terminal_at_end and t == n - 1) or bool(self.rng.random() < 0.1)
            f = self.frame()
            s2 = self.fs.push(f)
            self.mem.add(a, r, terminal, f)
            self.trans[self.g - 1] = (s, a, r, terminal, s2)
            self.pos[self.g] = t + 1
            self.g += 1
            s = s2

    # ---- what should be held, computed from global indices only (no ring arithmetic) ----
    def held(self) -> range:
        return range(self.g - self.mem.size, self.g)

    def expected_valid(self) -> list[int]:
        """Global rows whose transition, next frame and whole stack are all still held."""
        lo = self.g - self.mem.size
        out = []
        for g, _ in self.trans.items():
            first_of_stack = g - min(self.spec.stack - 1, self.pos[g])
            if first_of_stack >= lo and g + 1 < self.g:
                out.append(g)
        return sorted(out)

    def row(self, g: int) -> int:
        return (g - self.dropped) % self.mem.capacity


def _check_against_actor(sim: Sim) -> None:
    mem = sim.mem
    assert mem.added == sim.g
    assert mem.size == min(sim.g - sim.dropped, mem.capacity)
    valid_g = sim.expected_valid()
    assert valid_g, "test setup: no valid transitions"
    rows = np.array([sim.row(g) for g in valid_g])
    # exactly the expected rows, oldest first
    np.testing.assert_array_equal(mem.transition_rows(), rows)
    assert mem.n_transitions() == len(valid_g)
    s, s2 = mem.states(rows), mem.states((rows + 1) % mem.capacity)
    assert s.shape == (len(rows), *sim.spec.obs_shape) and s.dtype == sim.spec.frame_dtype
    for k, g in enumerate(valid_g):
        want_s, a, r, terminal, want_s2 = sim.trans[g]
        np.testing.assert_array_equal(s[k], want_s, err_msg=f"state at global row {g}")
        np.testing.assert_array_equal(s2[k], want_s2, err_msg=f"next state at global row {g}")
        assert mem.actions[rows[k]] == a and mem.rewards[rows[k]] == r
        assert bool(mem.terminals[rows[k]]) == terminal
    # rows that hold a frame but must not be sampled: episode-final frames and transitions
    # whose stack reaches back into overwritten rows
    invalid = [sim.row(g) for g in sim.held() if g not in set(valid_g)]
    if invalid:
        assert not mem.valid(np.array(invalid)).any()


@pytest.mark.parametrize("spec", [IMG, VEC, VEC3], ids=["img-stack4", "vec-stack1", "vec-stack3"])
def test_states_match_framestack_before_wrap(spec):
    sim = Sim(spec, capacity=1000)
    for n in EPISODES:
        sim.episode(n)
    assert sim.mem.size < sim.mem.capacity
    _check_against_actor(sim)


@pytest.mark.parametrize("spec", [IMG, VEC, VEC3], ids=["img-stack4", "vec-stack1", "vec-stack3"])
@pytest.mark.parametrize("capacity", [7, 23, 64])
def test_states_match_framestack_after_wrap(spec, capacity):
    sim = Sim(spec, capacity=capacity, seed=capacity)
    n_wraps = 0
    for i, n in enumerate(EPISODES * 2):
        before = sim.mem.cursor
        sim.episode(n, terminal_at_end=i % 3 != 0)  # some episodes end by truncation
        n_wraps += sim.mem.cursor < before or n + 1 >= capacity
        _check_against_actor(sim)  # after every episode, at every ring phase
    assert n_wraps >= 3 and sim.mem.size == capacity


def test_mid_episode_checks_at_every_step():
    """The newest row never has a transition yet; the ring cursor sits anywhere."""
    sim = Sim(IMG, capacity=11, seed=3)
    for n in (2, 30, 5):
        f = sim.frame()
        s = sim.fs.reset(f)
        sim.mem.start_episode(f)
        sim.pos[sim.g] = 0
        sim.g += 1
        for t in range(n):
            f = sim.frame()
            s2 = sim.fs.push(f)
            sim.mem.add(1, 0.5, False, f)
            sim.trans[sim.g - 1] = (s, 1, 0.5, False, s2)
            sim.pos[sim.g] = t + 1
            sim.g += 1
            s = s2
            newest = (sim.mem.cursor - 1) % sim.mem.capacity
            assert not sim.mem.valid(np.array([newest]))[0]
            if sim.expected_valid():
                _check_against_actor(sim)


@pytest.mark.parametrize("capacity", [9, 40])
def test_sampling_never_returns_invalid_rows(capacity):
    sim = Sim(IMG, capacity=capacity, seed=1)
    for n in EPISODES:
        sim.episode(n)
    valid_rows = {sim.row(g) for g in sim.expected_valid()}
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(200):
        rows = sim.mem.sample_rows(rng, 16)
        assert len(rows) == 16
        assert set(rows.tolist()) <= valid_rows
        seen |= set(rows.tolist())
    assert seen == valid_rows  # and every valid row can be drawn


def test_sampled_batch_is_the_actors_transitions():
    sim = Sim(IMG, capacity=50, seed=2)
    for n in EPISODES:
        sim.episode(n)
    by_row = {sim.row(g): sim.trans[g] for g in sim.expected_valid()}
    rows = sim.mem.sample_rows(np.random.default_rng(9), 32)
    s, a, r, s2, done = sim.mem.sample(np.random.default_rng(9), 32)  # same draws
    assert s.shape == (32, 4, 84, 84) and s.dtype == np.uint8 and done.dtype == np.float32
    for k, row in enumerate(rows):
        want_s, want_a, want_r, want_t, want_s2 = by_row[int(row)]
        np.testing.assert_array_equal(s[k], want_s)
        np.testing.assert_array_equal(s2[k], want_s2)
        assert (a[k], r[k], done[k]) == (want_a, want_r, float(want_t))


def test_too_few_transitions_to_sample():
    mem = ReplayMemory(10, (4,), np.float32, 1)
    mem.start_episode(np.zeros(4, np.float32))
    with pytest.raises(RuntimeError, match="too few valid transitions"):
        mem.sample_rows(np.random.default_rng(0), 4)


def test_misuse_is_refused():
    with pytest.raises(ValueError, match="buffer_size"):
        ReplayMemory(1, (4,), np.float32, 1)
    mem = ReplayMemory(10, (4,), np.float32, 1)
    with pytest.raises(RuntimeError, match="start_episode"):
        mem.add(0, 0.0, False, np.zeros(4, np.float32))


# ---- storage ------------------------------------------------------------------------------
def test_frames_stored_once():
    cap = 500
    sim = Sim(IMG, capacity=cap, seed=4)
    for n in EPISODES * 3:
        sim.episode(n)
    mem = sim.mem
    assert mem.size == cap
    # one frame per row: capacity x 84 x 84 bytes, not 2 x stack frames per transition
    assert mem.frames.shape == (cap, 84, 84) and mem.frames.dtype == np.uint8
    total = sum(a.nbytes for a in vars(mem).values() if isinstance(a, np.ndarray))
    per_row = total / cap
    assert per_row < 84 * 84 + 64, per_row
    assert per_row < 2 * 4 * 84 * 84 / 7  # the seed's layout is 8 frames per transition


def test_hdf5_round_trip_identical(tmp_path):
    cap = 60
    sim = Sim(IMG, capacity=cap, seed=5)
    for n in EPISODES:
        sim.episode(n)
    mem = sim.mem
    assert mem.size == cap and mem.cursor != 0  # wrapped, oldest row mid-ring
    path = str(tmp_path / "replay.h5")
    mem.save(path)
    with h5py.File(path) as f:
        assert f["frames"].shape == (cap, 84, 84)  # one frame per row on disk too
        assert f.attrs["stack"] == 4 and f.attrs["added"] == mem.added
    back = ReplayMemory.load(path)
    assert (back.capacity, back.size, back.added, back.stack) == (cap, cap, mem.added, 4)
    assert back.frame_shape == (84, 84) and back.frames.dtype == np.uint8
    order = (mem.oldest + np.arange(mem.size)) % cap  # the file holds rows oldest first
    for name in ("frames", "actions", "rewards", "terminals", "has_next", "pos"):
        np.testing.assert_array_equal(getattr(back, name)[:cap], getattr(mem, name)[order],
                                      err_msg=name)
    # the same transitions, the same stacks
    np.testing.assert_array_equal(back.states(back.transition_rows()),
                                  mem.states(mem.transition_rows()))
    # sampled batches with the same RNG are identical
    for seed in range(5):
        b1 = mem.sample(np.random.default_rng(seed), 32)
        b2 = back.sample(np.random.default_rng(seed), 32)
        for x, y in zip(b1, b2):
            np.testing.assert_array_equal(x, y)
    # save(load(x)) == x, byte for byte in every dataset
    path2 = str(tmp_path / "replay2.h5")
    back.save(path2)
    with h5py.File(path) as f1, h5py.File(path2) as f2:
        assert set(f1) == set(f2)
        for name in f1:
            np.testing.assert_array_equal(f1[name][...], f2[name][...])


def test_loaded_replay_keeps_growing(tmp_path):
    """What a resumed run does: load into a larger capacity, start an episode, add."""
    sim = Sim(VEC3, capacity=40, seed=6)
    for n in EPISODES[:6]:
        sim.episode(n)
    path = str(tmp_path / "r.h5")
    sim.mem.save(path)
    back = ReplayMemory.load(path, capacity=100)
    assert back.capacity == 100 and back.size == sim.mem.size
    assert sim.mem.size == 40 and sim.mem.cursor != 0  # the saved ring had wrapped
    sim.mem, sim.dropped = back, sim.g - 40  # continue the same actor on the loaded replay
    g0 = sim.g
    for n in EPISODES[6:10]:
        sim.episode(n)
    assert back.size == 40 + (sim.g - g0) < 100 and back.added == sim.g
    _check_against_actor(sim)


def test_load_rejects_foreign_file(tmp_path):
    path = str(tmp_path / "x.h5")
    with h5py.File(path, "w") as f:
        f.create_dataset("frames", data=np.zeros((3, 4)))
    with pytest.raises(ValueError, match="not an rlpad-replay"):
        ReplayMemory.load(path)


def _flagged_replay(capacity: int) -> tuple[ReplayMemory, list[tuple[int, int, str]]]:
    """Episodes ending terminated or truncated, with lives lost inside (terminal for
    learning, as Atari profiles make them), then one under way. Returns the memory and, per
    finished episode, (first row, transitions, how it ended) in write order."""
    rng = np.random.default_rng(3)
    mem = ReplayMemory(capacity, (2,), np.float32, 1)
    plan = [(5, "term"), (7, "trunc"), (3, "term"), (9, "trunc"), (4, "term"), (6, None)]
    out = []
    for n, end in plan:
        out.append((mem.added, n, end))
        mem.start_episode(rng.standard_normal(2).astype(np.float32))
        for t in range(n):
            last = t == n - 1
            term, trunc = last and end == "term", last and end == "trunc"
            lost = not last and t == 1
            mem.add(0, 1.0, term or lost, rng.standard_normal(2).astype(np.float32),
                    terminated=term, truncated=trunc, life_lost=lost)
    return mem, out


def test_env_flags_are_kept_apart_and_inferred_from_a_v1_file(tmp_path):
    mem, _ = _flagged_replay(100)
    path = str(tmp_path / "v2.h5")
    mem.save(path)
    v2 = ReplayMemory.load(path)
    for name in ("terminations", "truncations", "life_losses", "terminals"):
        np.testing.assert_array_equal(getattr(v2, name)[:v2.size], getattr(mem, name)[:mem.size])
    assert v2.truncations.sum() == 2 and v2.terminations.sum() == 3 and v2.life_losses.sum() == 6
    # the same file as format v1 wrote it (one flag): the env's flags come back from where
    # each episode ends; the episode under way is neither terminated nor truncated
    with h5py.File(path, "a") as f:
        for name in ("terminations", "truncations", "life_losses"):
            del f[name]
        f.attrs["version"] = 1
    v1 = ReplayMemory.load(path)
    for name in ("terminations", "truncations", "life_losses"):
        np.testing.assert_array_equal(getattr(v1, name)[:v1.size], getattr(mem, name)[:mem.size],
                                      err_msg=name)


def test_episodes_skip_the_fragment_the_ring_cut_and_mark_the_one_under_way():
    mem, plan = _flagged_replay(30)  # 40 rows written: the first episode's rows are gone
    eps = mem.episodes()
    held = [p for p in plan if p[0] >= mem.added - mem.size]
    assert [len(rows) - 1 for rows, _ in eps] == [n for _, n, _ in held]
    assert [u for _, u in eps] == [False] * (len(held) - 1) + [True]
    for (rows, _), (_, n, end) in zip(eps, held):
        t = rows[:-1]
        assert mem.has_next[t].all() and not mem.has_next[rows[-1]]
        assert mem.terminations[t[-1]] == (end == "term") and mem.truncations[t[-1]] == (end == "trunc")
