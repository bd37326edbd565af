"""The `diffusion` kind: EDM (Karras et al. 2022, "Elucidating the Design Space of Diffusion-Based
Generative Models") on standardised feature rows, as SynthER (Lu et al. 2023) uses it for
transitions, here conditioned on the class label.

Defaults are EDM's and SynthER's (sigma_min 0.002, sigma_max 80, rho 7, P_mean -1.2, P_std 1.2,
sigma_data 1; a residual-MLP denoiser with LayerNorm and a random-Fourier embedding of the noise
level; the stochastic Heun sampler with churn). Sized for a CPU: SynthER's denoiser is 6 blocks
of width 1024 and samples in 128 steps on a GPU; ours defaults to 3 blocks of width 256 and 32
sampler steps (``GanConfig.diffusion_*``), which keeps sampling 5,000 rows within seconds here.

A sample is a deterministic function of its starting noise and the churn noise of every step,
so the sampler takes them as one "noise" input of width feat_dim x (steps + 1), like a GAN's
generator takes z.
"""
from __future__ import annotations

import math
import os

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from ..config import GanConfig  # noqa: E402
from .gan_models import _dense, _Seeds  # noqa: E402

FOURIER_DIM = 16  # SynthER's learned_sinusoidal_dim


def noise_width(cfg: GanConfig, feat_dim: int) -> int:
    return feat_dim * (cfg.diffusion_sample_steps + 1)


def build_denoiser(cfg: GanConfig, feat_dim: int, n_classes: int, seed: int = 0) -> keras.Model:
    """F([x_in (B, feat_dim), c_noise (B,), label (B,)]) -> (B, feat_dim): EDM's raw network."""
    seeds = _Seeds(seed)
    width = int(cfg.diffusion_width)
    x = keras.Input((feat_dim,), name="x_in")
    c_noise = keras.Input((), name="c_noise")
    label = keras.Input((), dtype="int32", name="label")
    freqs = np.random.default_rng(seeds()).standard_normal(FOURIER_DIM // 2).astype(np.float32)
    t = keras.layers.Lambda(lambda c: _fourier(c, freqs), name="g_fourier")(c_noise)
    t = _dense(width // 2, "g_time_0", seeds, activation="silu")(t)
    t = _dense(width // 2, "g_time_1", seeds)(t)
    onehot = keras.layers.CategoryEncoding(n_classes, output_mode="one_hot", name="g_onehot")(label)
    h = keras.layers.Concatenate(name="g_condition")([x, t, onehot])
    h = _dense(width, "g_proj", seeds)(h)
    for i in range(int(cfg.diffusion_depth)):
        r = keras.layers.LayerNormalization(name=f"g_ln_{i}")(h)
        r = keras.layers.Activation("relu", name=f"g_act_{i}")(r)
        h = keras.layers.Add(name=f"g_res_{i}")([h, _dense(width, f"g_block_{i}", seeds)(r)])
    h = keras.layers.LayerNormalization(name="g_ln_out")(h)
    h = keras.layers.Activation("relu", name="g_act_out")(h)
    out = _dense(feat_dim, "g_out", seeds)(h)
    return keras.Model([x, c_noise, label], out, name="denoiser")


def _fourier(c, freqs):
    # the random frequencies are fixed by the seed, as random_fourier_features in SynthER
    ang = 2.0 * math.pi * c[:, None] * tf.constant(freqs)[None, :]
    return tf.concat([c[:, None], tf.sin(ang), tf.cos(ang)], axis=1)


def _precond(cfg: GanConfig, net: keras.Model, x, sigma, lab, training: bool):
    """EDM's denoiser D(x; sigma) = c_skip x + c_out F(c_in x, c_noise)."""
    sd2 = float(cfg.diffusion_sigma_data) ** 2
    s = sigma[:, None]
    c_skip = sd2 / (s * s + sd2)
    c_out = s * math.sqrt(sd2) / tf.sqrt(s * s + sd2)
    c_in = 1.0 / tf.sqrt(s * s + sd2)
    return c_skip * x + c_out * net([c_in * x, tf.math.log(sigma) / 4.0, lab], training=training)


def make_diffusion_step(cfg: GanConfig, net: keras.Model, opt, net_ema: keras.Model | None):
    """One step of EDM's weighted denoising loss on a minibatch; EMA update as the WGAN-GP's.
    Metrics row: [loss, 0, 0, 0, 0]."""
    sd2 = float(cfg.diffusion_sigma_data) ** 2
    pm, ps = float(cfg.diffusion_p_mean), float(cfg.diffusion_p_std)
    ema_pairs = list(zip(net_ema.weights, net.weights)) if net_ema is not None else []

    def step(xr, lab, n_sigma, eps):
        sigma = tf.exp(pm + ps * n_sigma)
        weight = (sigma * sigma + sd2) / (sigma * sigma * sd2)
        with tf.GradientTape() as tape:
            den = _precond(cfg, net, xr + sigma[:, None] * eps, sigma, lab, training=True)
            loss = tf.reduce_mean(weight * tf.reduce_mean(tf.square(den - xr), axis=1))
        opt.apply_gradients(zip(tape.gradient(loss, net.trainable_variables),
                                net.trainable_variables))
        if ema_pairs:
            t = tf.cast(opt.iterations, tf.float32)
            decay = tf.minimum(float(cfg.g_ema), (1.0 + t) / (10.0 + t))
            for e, v in ema_pairs:
                e.assign(decay * e + (1.0 - decay) * v)
        return tf.stack([loss, 0.0, 0.0, 0.0, 0.0])

    return step


def sigma_schedule(cfg: GanConfig) -> np.ndarray:
    """EDM's t_0 > ... > t_{N-1} and t_N = 0."""
    n, rho = int(cfg.diffusion_sample_steps), float(cfg.diffusion_rho)
    lo, hi = float(cfg.diffusion_sigma_min), float(cfg.diffusion_sigma_max)
    i = np.arange(n, dtype=np.float64)
    t = (hi ** (1 / rho) + i / max(n - 1, 1) * (lo ** (1 / rho) - hi ** (1 / rho))) ** rho
    return np.append(t, 0.0).astype(np.float32)


def make_sampler(cfg: GanConfig, net: keras.Model, feat_dim: int):
    """noise (B, feat_dim (N+1)), label (B,) -> x (B, feat_dim): EDM's stochastic sampler
    (Algorithm 2: Heun steps with churn S_churn in [S_tmin, S_tmax], noise inflation S_noise).
    A graph loop over the steps, not an unrolled one: tracing stays one step's worth."""
    ts_np = sigma_schedule(cfg)
    n = int(cfg.diffusion_sample_steps)
    churn = min(float(cfg.diffusion_s_churn) / n, math.sqrt(2.0) - 1.0)
    s_min, s_max, s_noise = float(cfg.diffusion_s_tmin), float(cfg.diffusion_s_tmax), 1.003
    gammas = np.where((ts_np[:-1] >= s_min) & (ts_np[:-1] <= s_max), churn, 0.0).astype(np.float32)

    def den(x, sigma, lab):
        return _precond(cfg, net, x, tf.fill([tf.shape(x)[0]], sigma), lab, training=False)

    def sample(noise, lab):
        ts, gs = tf.constant(ts_np), tf.constant(gammas)
        b = tf.shape(noise)[0]
        eps_all = tf.reshape(noise, [b, n + 1, feat_dim])
        x = eps_all[:, 0] * ts[0]
        for i in tf.range(n):
            t_cur, t_next = ts[i], ts[i + 1]
            t_hat = t_cur * (1.0 + gs[i])
            x = x + tf.sqrt(t_hat * t_hat - t_cur * t_cur) * s_noise * eps_all[:, i + 1]
            d = (x - den(x, t_hat, lab)) / t_hat
            x_euler = x + (t_next - t_hat) * d
            # Heun's correction, except on the last step (to sigma = 0)
            t_safe = tf.maximum(t_next, 1e-12)
            d2 = (x_euler - den(x_euler, t_safe, lab)) / t_safe
            x = tf.where(t_next > 0, x + (t_next - t_hat) * (0.5 * d + 0.5 * d2), x_euler)
        return x

    return sample
