"""The `cvae` kind: a conditional VAE (Kingma and Welling 2014; Sohn et al. 2015) on standardised
features, label one-hot concatenated to the encoder's and the decoder's inputs.

The decoder is Gaussian with a learned per-dimension scale, and a sample is mean + scale x noise:
decoding the mean alone would give samples with too little spread, which a two-sample
classifier sees at once. Its "noise" input is therefore [z (latent_dim), observation noise
(feat_dim)], so sampling is one forward pass like a GAN's generator. beta weights the KL term
(beta-VAE, Higgins et al. 2017); with the learned scale, beta = 1 is the ELBO itself.
"""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from ..config import GanConfig  # noqa: E402
from .gan_models import _dense, _Seeds  # noqa: E402

LOG_SCALE_RANGE = (-7.0, 2.0)  # constant dims would drive the scale to 0 and the NLL to -inf


class _GaussianOut(keras.layers.Layer):
    """mean + exp(log_scale) * noise, log_scale a learned vector (clipped)."""

    def build(self, input_shape):
        self.log_scale = self.add_weight(shape=(input_shape[0][-1],), initializer="zeros",
                                         name="log_scale")

    def call(self, inputs):
        mean, noise = inputs
        return mean + tf.exp(self.clipped()) * noise

    def clipped(self):
        return tf.clip_by_value(self.log_scale, *LOG_SCALE_RANGE)


def noise_width(cfg: GanConfig, feat_dim: int) -> int:
    return cfg.latent_dim + feat_dim


def build_decoder(cfg: GanConfig, feat_dim: int, n_classes: int, seed: int = 0) -> keras.Model:
    """dec([noise (B, latent_dim + feat_dim), label (B,)]) -> (B, feat_dim), standardised space."""
    seeds = _Seeds(seed)
    noise = keras.Input((noise_width(cfg, feat_dim),), name="noise")
    label = keras.Input((), dtype="int32", name="label")
    z = keras.layers.Lambda(lambda t: t[:, :cfg.latent_dim], name="g_z")(noise)
    obs = keras.layers.Lambda(lambda t: t[:, cfg.latent_dim:], name="g_obs_noise")(noise)
    onehot = keras.layers.CategoryEncoding(n_classes, output_mode="one_hot", name="g_onehot")(label)
    h = keras.layers.Concatenate(name="g_condition")([z, onehot])
    for i, w in enumerate(cfg.g_hidden):
        h = _dense(w, f"g_dense_{i}", seeds, activation="silu")(h)
    mean = _dense(feat_dim, "g_mean", seeds)(h)
    if not cfg.cvae_noise:
        obs = keras.layers.Lambda(lambda t: 0.0 * t, name="g_no_noise")(obs)
    out = _GaussianOut(name="g_out")([mean, obs])
    return keras.Model([noise, label], out, name="decoder")


def build_encoder(cfg: GanConfig, feat_dim: int, n_classes: int, seed: int = 0) -> keras.Model:
    """enc([x (B, feat_dim), label (B,)]) -> (B, 2 latent_dim): the posterior's mean, log-variance."""
    seeds = _Seeds(seed + 7919)
    x = keras.Input((feat_dim,), name="x")
    label = keras.Input((), dtype="int32", name="label")
    onehot = keras.layers.CategoryEncoding(n_classes, output_mode="one_hot", name="d_onehot")(label)
    h = keras.layers.Concatenate(name="d_condition")([x, onehot])
    for i, w in enumerate(cfg.d_hidden):
        h = _dense(w, f"d_dense_{i}", seeds, activation="silu")(h)
    out = _dense(2 * cfg.latent_dim, "d_out", seeds)(h)
    return keras.Model([x, label], out, name="encoder")


def make_cvae_step(cfg: GanConfig, dec: keras.Model, enc: keras.Model, g_opt, d_opt):
    """One step on a minibatch: both nets by their own Adam on the negative ELBO (beta-weighted).
    Metrics row: [loss, nll, kl, mean log-scale, 0]."""
    beta = float(cfg.beta)
    lat = int(cfg.latent_dim)
    out_layer = dec.get_layer("g_out")
    variables = enc.trainable_variables + dec.trainable_variables
    n_enc = len(enc.trainable_variables)

    def step(xr, lab, eps_z):
        with tf.GradientTape() as tape:
            stats = enc([xr, lab], training=True)
            mu, logvar = stats[:, :lat], tf.clip_by_value(stats[:, lat:], -10.0, 10.0)
            z = mu + tf.exp(0.5 * logvar) * eps_z
            mean = dec([tf.concat([z, tf.zeros_like(xr)], axis=1), lab], training=True)
            ls = out_layer.clipped()
            nll = tf.reduce_mean(tf.reduce_sum(0.5 * tf.square((xr - mean) * tf.exp(-ls)) + ls,
                                               axis=1))
            kl = tf.reduce_mean(tf.reduce_sum(0.5 * (tf.exp(logvar) + tf.square(mu) - 1.0 - logvar),
                                              axis=1))
            loss = nll + beta * kl
        grads = tape.gradient(loss, variables)
        d_opt.apply_gradients(zip(grads[:n_enc], variables[:n_enc]))
        g_opt.apply_gradients(zip(grads[n_enc:], variables[n_enc:]))
        return tf.stack([loss, nll, kl, tf.reduce_mean(ls), 0.0])

    return step
