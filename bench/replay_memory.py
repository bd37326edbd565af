#!/usr/bin/env python
"""Peak RAM of a full-size Atari replay: rlpad's ReplayMemory against the seed's layout.

Fills a 400k-row ReplayMemory (84x84 uint8 frames, 4-frame stacks: the breakout profile's
dqn.buffer_size) through its real API (start_episode / add, episodes of varied length with
life-loss terminals, synthetic Breakout-like frames), samples batch-32 minibatches, then
(unless --no-hdf5) saves it to HDF5 and loads it back as a resumed stage does. Peak resident
memory is read from the kernel: VmHWM in /proc/self/status (reset between phases through
/proc/self/clear_refs) and ru_maxrss from getrusage.

The peer is the seed's layout, computed, not allocated (this machine has 24 GiB shared with
others): the seed (rlcode breakout_dqn.py) appended (history, action, reward, next_history,
dead) to a deque of 400k, each history a uint8 (1, 84, 84, 4) stack.

Usage: .venv/bin/python bench/replay_memory.py [--rows 400000] [--no-hdf5]
"""
from __future__ import annotations

import argparse
import gc
import os
import platform
import resource
import tempfile
import time

import numpy as np

from rlpad.replay import ReplayMemory

GIB = 1 << 30
TARGET_GIB = 3.5
FRAME = (84, 84)
STACK = 4


def _status_kib(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def rss() -> float:
    return _status_kib("VmRSS") * 1024 / GIB


def hwm() -> float:
    return _status_kib("VmHWM") * 1024 / GIB


def reset_hwm() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False where not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def frame_pool(n: int, rng: np.random.Generator) -> np.ndarray:
    """Breakout-like 84x84 grey frames: black field, brick rows with gaps, paddle, ball, score."""
    pool = np.zeros((n, *FRAME), np.uint8)
    pool[:, 4:7, 10:30] = 142  # score digits
    pool[:, 12:14, :] = 142  # top wall
    shades = np.array([110, 120, 130, 140, 150, 160], np.uint8)
    for k in range(n):
        for row, shade in enumerate(shades):
            bricks = rng.random(21) < 0.9
            y = 20 + 2 * row
            for b in np.flatnonzero(bricks):
                pool[k, y:y + 2, 2 + 4 * b:6 + 4 * b] = shade
        x = rng.integers(2, 76)
        pool[k, 78:80, x:x + 8] = 200  # paddle
        by, bx = rng.integers(34, 76), rng.integers(2, 82)
        pool[k, by:by + 2, bx:bx + 1] = 200  # ball
    return pool


def fill(mem: ReplayMemory, rows: int, pool: np.ndarray, rng: np.random.Generator) -> int:
    """Write `rows` rows as the training loop does; returns the episodes written."""
    written, episodes, k = 0, 0, 0
    while written < rows:
        length = int(rng.integers(150, 1500))  # agent steps in this episode
        mem.start_episode(pool[k % len(pool)])
        k += 1
        written += 1
        lives = 5
        for t in range(length):
            if written >= rows:
                break
            life_lost = lives > 1 and rng.random() < 5 / length
            lives -= life_lost
            mem.add(int(rng.integers(3)), float(rng.random() < 0.02), bool(life_lost or t == length - 1),
                    pool[k % len(pool)])
            k += 1
            written += 1
        episodes += 1
    return episodes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=400_000, help="replay capacity (rows = frames)")
    ap.add_argument("--batches", type=int, default=1000, help="batch-32 samples to draw")
    ap.add_argument("--no-hdf5", action="store_true", help="skip the HDF5 save/load phase")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    n = args.rows
    can_reset = reset_hwm()
    print(f"replay_memory: {platform.node()}, {os.cpu_count()} cores, load average "
          f"{os.getloadavg()[0]:.1f}; {n:,} rows of {FRAME[0]}x{FRAME[1]} uint8, stack {STACK}",
          flush=True)
    pool = frame_pool(256, rng)
    base = rss()
    phases = []  # (phase, seconds, peak GiB, peak above baseline)

    reset_hwm()
    t = time.perf_counter()
    mem = ReplayMemory(n, FRAME, np.uint8, STACK)
    episodes = fill(mem, n + n // 10, pool, rng)  # 10 % more rows than fit: the ring wraps
    fill_s = time.perf_counter() - t
    arrays = sum(a.nbytes for a in vars(mem).values() if isinstance(a, np.ndarray))
    phases.append(("fill (ring wrapped)", fill_s, hwm()))

    t = time.perf_counter()
    for _ in range(args.batches):
        s, a, r, s2, d = mem.sample(rng, 32)
    sample_ms = (time.perf_counter() - t) / args.batches * 1e3
    assert s.shape == (32, STACK, *FRAME) and s2.dtype == np.uint8
    phases.append((f"sample {args.batches} x batch 32", sample_ms * args.batches / 1e3, hwm()))

    file_mb = None
    if not args.no_hdf5:
        with tempfile.TemporaryDirectory(prefix="rlpad-bench-") as tmp:
            path = os.path.join(tmp, "replay.h5")
            reset_hwm()
            t = time.perf_counter()
            mem.save(path)
            phases.append(("save to HDF5 (gzip 1)", time.perf_counter() - t, hwm()))
            file_mb = os.path.getsize(path) / 1e6
            del mem, s, s2
            gc.collect()
            reset_hwm()
            t = time.perf_counter()
            mem = ReplayMemory.load(path)
            phases.append(("load from HDF5 (resume)", time.perf_counter() - t, hwm()))
            assert mem.size == n
    ru_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GIB  # KiB on Linux
    peak = max(p[2] for p in phases)

    stack_b = STACK * FRAME[0] * FRAME[1]
    seed_twice = n * 2 * stack_b  # the DESIGN.md reading: every stack stored twice
    seed_shared = n * stack_b  # rlcode's deque: history is the previous next_history (same object)
    seed_f32 = seed_twice * 4

    print()
    print(f"rlpad ReplayMemory, {n:,} rows ({episodes:,} episodes written, "
          f"{mem.n_transitions():,} valid transitions)")
    print(f"  arrays held: {arrays / GIB:.2f} GiB ({arrays / n:,.0f} B/row; frames "
          f"{mem.frames.nbytes / GIB:.2f} GiB); process baseline before the replay {base:.2f} GiB")
    print(f"  {'phase':28s} {'seconds':>8s} {'peak RSS GiB':>13s}")
    for name, sec, pk in phases:
        print(f"  {name:28s} {sec:8.1f} {pk:13.2f}")
    print(f"  sampling: {sample_ms:.2f} ms per batch of 32 (states and next states)")
    if file_mb is not None:
        print(f"  HDF5 file: {file_mb:,.0f} MB ({mem.frames.nbytes / 1e6 / file_mb:.0f}x smaller "
              "than the frames; synthetic frames, real ones compress 30-80x)")
    if not can_reset:
        print("  (VmHWM could not be reset between phases: each peak is the process's so far)")
    verdict = "meets" if peak <= TARGET_GIB else "MISSES"
    print(f"  peak RSS of the process: {peak:.2f} GiB; target <= {TARGET_GIB} GiB: {verdict}")
    if not can_reset:  # ru_maxrss follows VmHWM's resets; without them it is the lifetime peak
        print(f"  (getrusage ru_maxrss: {ru_peak:.2f} GiB)")
    print()
    print("The seed's layout, computed for the same rows (uint8 stacks of 4x84x84 = "
          f"{stack_b:,} B)")
    print(f"  {'layout':52s} {'GiB':>7s} {'GB':>7s} {'vs rlpad peak':>14s}")
    for label, b in (("two stacks per transition (DESIGN.md's reading)", seed_twice),
                     ("one stack per transition (rlcode: shared arrays)", seed_shared),
                     ("two float32 stacks per transition (if it had)", seed_f32)):
        print(f"  {label:52s} {b / GIB:7.2f} {b / 1e9:7.2f} {b / GIB / peak:13.1f}x")
    print("   (the middle row: rlcode appends (history, ..., next_history) and then sets history ="
          "\n    next_history, so consecutive transitions share one array; Python object overhead"
          f"\n    of ~0.3 KB per transition adds ~{n * 300 / GIB:.2f} GiB to each of these)")
    if n == 400_000:
        print("  DESIGN.md's ~22 GiB is the first row in decimal GB (22.6 GB = 21.0 GiB).")


if __name__ == "__main__":
    main()
