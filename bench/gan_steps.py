#!/usr/bin/env python
"""Stage 3's GAN training speed: train steps per second of `rlpad.generators.fit_gan`.

Both variants (cgan-seed, wgan-gp) at two sizes:
  * quick: the quick profile's [gan] (G 256-256, D 256-256, batch 256) on CartPole-sized
    features (2 x 64 = 128 values, 2 actions x 6 = 12 classes);
  * seed: the breakout profile's [gan], i.e. the seed's Keras-GAN sizes (G 128-256-512-512,
    D 256-512-512-512-128, batch 100, latent 100) on Nature-CNN features (2 x 512 = 1024
    values, 3 actions x 6 = 18 classes).
A "step" is one generator update: cgan-seed does 2 D updates + 1 G update per step, wgan-gp
n_critic (5) critic updates + 1 G update + the EMA update. Data are stage-2-like synthetic
features (`rlpad.generators.quality.synthetic_features`). Rates come from fit_gan's own progress
windows, leaving out the first (it holds the tf.function tracing).

Peer, in the same run: the seed's own loop for cgan-seed (Keras-GAN `cgan.py`): the same
G and D models, `D.train_on_batch` on real then on `G.predict(...)` fakes, then
`combined.train_on_batch` through a frozen D — one Python-level Keras call per update.

Usage: .venv/bin/python bench/gan_steps.py [--steps 300] [--peer-steps 60] [--sizes quick,seed]
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SIZES = {  # name -> (profile whose [gan] section is used, embed_dim, n_actions)
    "quick": ("quick", 64, 2),
    "seed": ("breakout", 512, 3),
}


def rlpad_rate(gcfg, x, labels, n_classes: int, steps: int) -> tuple[float, float]:
    """(steps/s in steady state, seconds of the first window incl. tracing)."""
    from rlpad.generators import fit_gan

    window = max(steps // 6, 10)
    gcfg = dataclasses.replace(gcfg, steps=steps, log_every=window, max_restarts=0)
    rates, first = [], []

    def progress(step, total, info):
        (first if not first else rates).append(info["steps_per_s"])

    t = time.perf_counter()
    fit_gan(x, labels, n_classes, gcfg, seed=1, progress=progress)
    wall = time.perf_counter() - t
    return statistics.median(rates), window / first[0] if first else wall


def seed_loop_rate(gcfg, x, labels, n_classes: int, steps: int) -> float:
    """The Keras-GAN cgan.py loop with rlpad's seed-variant models."""
    import keras
    import numpy as np

    from rlpad.generators import build_discriminator, build_generator

    G = build_generator(gcfg, x.shape[1], n_classes, seed=1)
    D = build_discriminator(gcfg, x.shape[1], n_classes, seed=1)
    D.compile(loss="binary_crossentropy", metrics=["accuracy"],
              optimizer=keras.optimizers.Adam(gcfg.lr, beta_1=gcfg.beta1))
    z_in = keras.Input((gcfg.latent_dim,))
    l_in = keras.Input((), dtype="int32")
    D.trainable = False
    combined = keras.Model([z_in, l_in], D([G([z_in, l_in]), l_in]))
    combined.compile(loss="binary_crossentropy",
                     optimizer=keras.optimizers.Adam(gcfg.lr, beta_1=gcfg.beta1))
    rng = np.random.default_rng(0)
    bs = gcfg.batch_size
    valid, fake = np.ones((bs, 1), np.float32), np.zeros((bs, 1), np.float32)

    def one_step() -> None:
        idx = rng.integers(0, len(x), bs)
        noise = rng.standard_normal((bs, gcfg.latent_dim)).astype(np.float32)
        gen = G.predict([noise, labels[idx]], verbose=0)
        D.trainable = True
        D.train_on_batch([x[idx], labels[idx]], valid)
        D.train_on_batch([gen, labels[idx]], fake)
        D.trainable = False
        sampled = rng.integers(0, n_classes, bs).astype(np.int32)
        combined.train_on_batch([noise, sampled], valid)

    for _ in range(5):  # builds the train/predict functions
        one_step()
    t = time.perf_counter()
    for _ in range(steps):
        one_step()
    return steps / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=300, help="fit_gan steps per measurement")
    ap.add_argument("--peer-steps", type=int, default=60, help="timed steps of the seed's loop")
    ap.add_argument("--sizes", default="quick,seed")
    ap.add_argument("--rows", type=int, default=20_000, help="synthetic training rows")
    args = ap.parse_args()

    import rlpad  # noqa: F401  oneDNN on before TensorFlow loads (rlpad/__init__.py)
    import tensorflow as tf

    from rlpad.config import load_config
    from rlpad.generators.quality import synthetic_features

    print(f"# gan_steps: TF {tf.__version__}, {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.2f}; {args.steps} steps per rlpad measurement")
    rows = []
    for size in args.sizes.split(","):
        profile, embed_dim, n_actions = SIZES[size]
        n_classes = 6 * n_actions
        x, labels = synthetic_features(args.rows, embed_dim, n_classes, seed=0)
        base = load_config(profile).gan
        out = {}
        for variant in ("cgan-seed", "wgan-gp"):
            gcfg = dataclasses.replace(base, variant=variant)
            out[variant] = rlpad_rate(gcfg, x, labels, n_classes, args.steps)
        peer = seed_loop_rate(dataclasses.replace(base, variant="cgan-seed"), x, labels,
                              n_classes, args.peer_steps)
        rows.append((size, base, x.shape[1], n_classes, out, peer))

    print(f"{'size':<6} {'features':>8} {'classes':>7} {'batch':>5}  {'G / D hidden':<32} "
          f"{'cgan-seed st/s':>14} {'seed loop st/s':>14} {'rlpad/seed':>10} {'wgan-gp st/s':>12} "
          f"{'wgan/cgan':>9}  first window (s): cgan, wgan")
    for size, base, f, k, out, peer in rows:
        c, w = out["cgan-seed"][0], out["wgan-gp"][0]
        arch = f"{'-'.join(map(str, base.g_hidden))} / {'-'.join(map(str, base.d_hidden))}"
        print(f"{size:<6} {f:>8} {k:>7} {base.batch_size:>5}  {arch:<32} {c:>14.1f} {peer:>14.1f} "
              f"{c / peer:>9.2f}x {w:>12.1f} {w / c:>8.2f}x  "
              f"{out['cgan-seed'][1]:.1f}, {out['wgan-gp'][1]:.1f}")
    for size, base, *_ , out, _peer in rows:
        steps = load_config(SIZES[size][0]).gan.steps
        v = load_config(SIZES[size][0]).gan.variant
        print(f"{size}: the profile's {steps:,} {v} steps take ~{steps / out[v][0] / 60:.1f} min "
              f"at this rate")


if __name__ == "__main__":
    main()
