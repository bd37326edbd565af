"""A GAN's networks, optimisers and its training as compiled chunks of steps.

A chunk (many steps in one tf.function call) costs TF ops, not Python: each step's minibatch,
noise and gradient-penalty mix are drawn inside the graph by stateless RNG from (attempt seed,
step), so a chunk is a pure function of the weights, the data and its first step, and a resume
from a checkpoint at any chunk boundary draws exactly what the uninterrupted run drew.

A trainer is built once per (settings, width, classes) and reused by every fit of that
signature (per-trial constrained fits above all): tracing a chunk costs ~1-2 s, more than a
small fit. A fit starts by copying freshly seeded initial values into the trainer's variables.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import os

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import tensorflow as tf  # noqa: E402

from ..config import GanConfig  # noqa: E402
from . import kinds  # noqa: E402
from .diffusion_models import make_diffusion_step  # noqa: E402
from .gan_models import _make_cgan_step, _make_optimizer, _make_wgan_step  # noqa: E402
from .vae_models import make_cvae_step  # noqa: E402

# settings that a fit may change without changing what one step computes
_LOOP_ONLY = ("steps", "checkpoint_every", "log_every", "max_restarts", "restart_low",
              "restart_high", "restart_window", "holdout_fraction")


class GanTrainer:
    """The nets (G: the one samples come from; D: the critic, the encoder or None; G's moving
    average), their optimisers and the compiled chunk for one signature."""

    def __init__(self, cfg: GanConfig, feat_dim: int, n_classes: int):
        self.cfg, self.feat_dim, self.n_classes = cfg, feat_dim, n_classes
        self.G, self.D = kinds.build_nets(cfg, feat_dim, n_classes, seed=0)
        self.G_ema = kinds.build_nets(cfg, feat_dim, n_classes, seed=0)[0] if kinds.has_ema(cfg) else None
        self.g_opt = _make_optimizer(cfg, "g_adam")
        self.g_opt.build(self.G.trainable_variables)
        self.d_opt = None
        if self.D is not None:
            self.d_opt = _make_optimizer(cfg, "d_adam")
            self.d_opt.build(self.D.trainable_variables)
        self._opt_init = [v.numpy() for v in self._opt_variables()]
        # the output clip's bounds change with each fit's data: variables, not constants
        self.lo = tf.Variable(tf.zeros([feat_dim]), trainable=False)
        self.hi = tf.Variable(tf.zeros([feat_dim]), trainable=False)
        if cfg.variant == "cgan-seed":
            self._step = _make_cgan_step(cfg, self.G, self.D, self.g_opt, self.d_opt)
        elif cfg.variant == "cvae":
            self._step = make_cvae_step(cfg, self.G, self.D, self.g_opt, self.d_opt)
        elif cfg.variant == "diffusion":
            self._step = make_diffusion_step(cfg, self.G, self.g_opt, self.G_ema)
        else:
            def post(raw):
                return tf.clip_by_value(raw, self.lo, self.hi) if kinds.clips(cfg) else raw
            self._step = _make_wgan_step(cfg, self.G, self.D, self.g_opt, self.d_opt, post,
                                         self.G_ema)
        self.chunk = self._make_chunk()

    def _opt_variables(self) -> list:
        return self.g_opt.variables + (self.d_opt.variables if self.d_opt is not None else [])

    def reset(self, seed: int, lo: np.ndarray, hi: np.ndarray) -> None:
        """Fresh initial weights for `seed` (those of nets built with it) and fresh optimisers."""
        g, d = kinds.build_nets(self.cfg, self.feat_dim, self.n_classes, seed=seed)
        fresh = [(self.G, g)] + ([(self.D, d)] if d is not None else [])
        if self.G_ema is not None:
            fresh.append((self.G_ema, g))  # the average starts at G's initial weights
        for model, new in fresh:
            for v, w in zip(model.variables, new.variables, strict=True):
                v.assign(w)
        for v, w in zip(self._opt_variables(), self._opt_init, strict=True):
            v.assign(w)
        self.lo.assign(lo)
        self.hi.assign(hi)

    def _make_chunk(self):
        cfg = self.cfg
        bs, dim, k = int(cfg.batch_size), int(cfg.latent_dim), int(cfg.n_critic)
        seed_spec = tf.TensorSpec([], tf.int64)

        # Not XLA-compiled: measured on a per-trial fit (WGAN-GP 128x2, batch 100), XLA gave
        # no gain (5.6 vs 5.4 s for 1,000 steps) and a longer first trace.
        @tf.function(input_signature=[tf.TensorSpec([None, self.feat_dim], tf.float32),
                                      tf.TensorSpec([None], tf.int32), seed_spec, seed_spec,
                                      tf.TensorSpec([], tf.int32)])
        def chunk(xs, labels, seed, start, n):
            """Steps start .. start+n-1 of an attempt; their metrics, one row per step."""
            rows = tf.shape(xs)[0]
            out = tf.TensorArray(tf.float32, size=n)
            for j in tf.range(n):
                t = (start + tf.cast(j, tf.int64)) * 8

                def s(i, t=t):
                    return tf.stack([seed, t + i])
                if cfg.variant == "cgan-seed":
                    idx = tf.random.stateless_uniform([bs], s(0), 0, rows, dtype=tf.int32)
                    z = tf.random.stateless_normal([bs, dim], s(1))
                    z2 = tf.random.stateless_normal([bs, dim], s(2))
                    # the seed's G trains on uniform labels
                    lab2 = tf.random.stateless_uniform([bs], s(3), 0, self.n_classes, dtype=tf.int32)
                    m = self._step(tf.gather(xs, idx), tf.gather(labels, idx), z, z2, lab2)
                elif cfg.variant == "cvae":
                    idx = tf.random.stateless_uniform([bs], s(0), 0, rows, dtype=tf.int32)
                    z = tf.random.stateless_normal([bs, dim], s(1))
                    m = self._step(tf.gather(xs, idx), tf.gather(labels, idx), z)
                elif cfg.variant == "diffusion":
                    idx = tf.random.stateless_uniform([bs], s(0), 0, rows, dtype=tf.int32)
                    n_sigma = tf.random.stateless_normal([bs], s(1))
                    eps = tf.random.stateless_normal([bs, self.feat_dim], s(2))
                    m = self._step(tf.gather(xs, idx), tf.gather(labels, idx), n_sigma, eps)
                else:
                    idx = tf.random.stateless_uniform([k, bs], s(0), 0, rows, dtype=tf.int32)
                    z = tf.random.stateless_normal([k, bs, dim], s(1))
                    eps = tf.random.stateless_uniform([k, bs, 1], s(2))
                    z2 = tf.random.stateless_normal([bs, dim], s(3))
                    # the data's class frequencies
                    lab2 = tf.gather(labels, tf.random.stateless_uniform([bs], s(4), 0, rows,
                                                                         dtype=tf.int32))
                    m = self._step(tf.gather(xs, idx), tf.gather(labels, idx), z, eps, z2, lab2)
                out = out.write(j, m)
            return out.stack()

        return chunk


def trainer_key(cfg: GanConfig, feat_dim: int, n_classes: int) -> str:
    d = dataclasses.asdict(cfg)
    for name in _LOOP_ONLY:
        d.pop(name)
    return json.dumps({"cfg": d, "f": feat_dim, "k": n_classes}, sort_keys=True)


@functools.lru_cache(maxsize=8)
def _cached(key: str) -> GanTrainer:
    spec = json.loads(key)
    cfg = GanConfig(**spec["cfg"])
    return GanTrainer(cfg, spec["f"], spec["k"])


def get_trainer(cfg: GanConfig, feat_dim: int, n_classes: int) -> GanTrainer:
    """The trainer for this signature, built on first use (one per worker process)."""
    return _cached(trainer_key(cfg, feat_dim, n_classes))
