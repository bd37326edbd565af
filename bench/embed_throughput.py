#!/usr/bin/env python
"""Stage 2's embedding throughput on Atari: the Nature-CNN encoder, states per second.

rlpad: `rlpad.embed.embed_states` (what `rlpad transform` calls: one tf.function over the
encoder, fed batch by batch) at a few batch sizes. Peer, in the same run and process, on the
same states and the same weights: Keras' plain `encoder.predict(states, batch_size=B)`. Both
outputs are compared (they must agree to float tolerance). Each timing includes what the
stage pays once per call (rlpad traces its tf.function per call; predict's function is built
by an untimed warm-up, in its favour). States are random uint8 (4, 84, 84) stacks: the
forward pass costs the same whatever the pixels. Medians of --repeats.

Usage: .venv/bin/python bench/embed_throughput.py [--states 4096] [--batches 32,128,512,2048] [--repeats 3]
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--states", type=int, default=4096)
    ap.add_argument("--batches", default="32,128,512,2048")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    batches = [int(b) for b in args.batches.split(",")]

    import numpy as np
    import rlpad  # noqa: F401  oneDNN on before TensorFlow loads (rlpad/__init__.py)
    import tensorflow as tf

    from rlpad.config import load_config
    from rlpad.embed import embed_states
    from rlpad.envs import env_spec
    from rlpad.qnet import build_qnet, split_at_cut

    cfg = load_config("breakout")
    spec = env_spec(cfg.env)
    full = build_qnet(cfg.qnet, spec.obs_shape, spec.n_actions)
    cut = split_at_cut(full, cfg.qnet, spec.obs_shape)  # what stage 2 embeds with
    x = np.random.default_rng(args.seed).integers(0, 256, (args.states, *spec.obs_shape),
                                                  dtype=np.uint8)
    print(f"# embed_throughput: Nature-CNN encoder ({spec.obs_shape} uint8 -> {cut.embed_dim}), "
          f"{args.states} states, median of {args.repeats}; TF {tf.__version__}, "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}, {platform.machine()}")
    cut.encoder.predict(x[:64], batch_size=64, verbose=0)  # builds predict's function (untimed)

    rows = []
    for b in batches:
        ours, peer = [], []
        for _ in range(args.repeats):
            t = time.perf_counter()
            e = embed_states(cut, lambda i, j: x[i:j], len(x), b)
            ours.append(time.perf_counter() - t)
            t = time.perf_counter()
            p = cut.encoder.predict(x, batch_size=b, verbose=0)
            peer.append(time.perf_counter() - t)
        diff = float(np.max(np.abs(e - p)))
        scale = float(np.max(np.abs(p)))
        assert diff <= 1e-4 * max(1.0, scale), f"outputs differ by {diff} at batch {b}"
        r, q = len(x) / statistics.median(ours), len(x) / statistics.median(peer)
        rows.append((b, r, q, r / q, diff))

    print(f"{'batch':>6}  {'rlpad states/s':>14}  {'predict states/s':>16}  {'rlpad/predict':>13}  {'max |diff|':>10}")
    for b, r, q, ratio, diff in rows:
        print(f"{b:>6}  {r:>14,.0f}  {q:>16,.0f}  {ratio:>12.2f}x  {diff:>10.1e}")
    best = max(rows, key=lambda row: row[1])
    fwd_mflop = 18.69  # per state, from the layer shapes (see bench/dqn_throughput.py)
    print(f"best rlpad: {best[1]:,.0f} states/s at batch {best[0]} "
          f"= {best[1] * fwd_mflop / 1e3:.0f} GFLOP/s of forward pass; "
          f"a 400k-state replay embeds in ~{400_000 / best[1]:.0f} s")


if __name__ == "__main__":
    main()
