"""The two GAN kinds' networks, optimisers and train steps: `cgan-seed` (the seed's Keras-GAN
cGAN) and `wgan-gp` (the stabilised one); see the package docstring for how they differ."""
from __future__ import annotations

import os

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from ..config import GanConfig  # noqa: E402
from .common import GanError  # noqa: E402

class _Seeds:
    """Distinct int seeds for each layer, derived from one seed (Keras initialisers with an int
    seed are stateless, so two layers sharing one would get identical weights)."""

    def __init__(self, seed: int):
        self._rng = np.random.default_rng(seed)

    def __call__(self) -> int:
        return int(self._rng.integers(1, 2**31 - 1))


def _dense(units: int, name: str, seeds: _Seeds, activation=None) -> keras.layers.Dense:
    return keras.layers.Dense(units, activation=activation, name=name,
                              kernel_initializer=keras.initializers.GlorotUniform(seed=seeds()))


def build_generator(cfg: GanConfig, feat_dim: int, n_classes: int, seed: int = 0) -> keras.Model:
    """G([noise (B, latent_dim) float32, label (B,) int32]) -> (B, feat_dim), linear output
    (raw feature space for cgan-seed, standardised space for wgan-gp)."""
    seeds = _Seeds(seed)
    noise = keras.Input((cfg.latent_dim,), name="noise")
    label = keras.Input((), dtype="int32", name="label")
    if cfg.variant == "cgan-seed":
        emb = keras.layers.Embedding(
            n_classes, cfg.latent_dim, name="g_label_embedding",
            embeddings_initializer=keras.initializers.RandomUniform(-0.05, 0.05, seed=seeds()))(label)
        h = keras.layers.Multiply(name="g_condition")([noise, emb])
        for i, w in enumerate(cfg.g_hidden):
            h = _dense(w, f"g_dense_{i}", seeds)(h)
            h = keras.layers.LeakyReLU(0.2, name=f"g_act_{i}")(h)
            h = keras.layers.BatchNormalization(momentum=0.8, name=f"g_bn_{i}")(h)
    elif cfg.variant == "wgan-gp":
        onehot = keras.layers.CategoryEncoding(n_classes, output_mode="one_hot", name="g_onehot")(label)
        h = keras.layers.Concatenate(name="g_condition")([noise, onehot])
        for i, w in enumerate(cfg.g_hidden):
            h = _dense(w, f"g_dense_{i}", seeds)(h)
            h = keras.layers.LeakyReLU(0.2, name=f"g_act_{i}")(h)
    else:
        raise GanError(f"unknown GAN variant {cfg.variant!r}")
    out = _dense(feat_dim, "g_out", seeds)(h)
    return keras.Model([noise, label], out, name="generator")


def build_discriminator(cfg: GanConfig, feat_dim: int, n_classes: int, seed: int = 0) -> keras.Model:
    """D([x (B, feat_dim), label (B,)]) -> (B, 1): a probability of 'real' for cgan-seed,
    an unbounded critic score for wgan-gp."""
    seeds = _Seeds(seed + 7919)
    x = keras.Input((feat_dim,), name="x")
    label = keras.Input((), dtype="int32", name="label")
    if cfg.variant == "cgan-seed":
        emb = keras.layers.Embedding(
            n_classes, feat_dim, name="d_label_embedding",
            embeddings_initializer=keras.initializers.RandomUniform(-0.05, 0.05, seed=seeds()))(label)
        h = keras.layers.Multiply(name="d_condition")([x, emb])
        for i, w in enumerate(cfg.d_hidden):
            h = _dense(w, f"d_dense_{i}", seeds)(h)
            h = keras.layers.LeakyReLU(0.2, name=f"d_act_{i}")(h)
            if i > 0 and cfg.dropout > 0:  # Keras-GAN's D has no dropout after its first layer
                h = keras.layers.Dropout(cfg.dropout, seed=seeds(), name=f"d_drop_{i}")(h)
        out = _dense(1, "d_out", seeds, activation="sigmoid")(h)
    elif cfg.variant == "wgan-gp":
        onehot = keras.layers.CategoryEncoding(n_classes, output_mode="one_hot", name="d_onehot")(label)
        h = keras.layers.Concatenate(name="d_condition")([x, onehot])
        for i, w in enumerate(cfg.d_hidden):
            h = _dense(w, f"d_dense_{i}", seeds)(h)
            h = keras.layers.LeakyReLU(0.2, name=f"d_act_{i}")(h)
            if cfg.critic_layer_norm:  # per-sample normalisation: compatible with the GP
                h = keras.layers.LayerNormalization(name=f"d_ln_{i}")(h)
        out = _dense(1, "d_out", seeds)(h)
    else:
        raise GanError(f"unknown GAN variant {cfg.variant!r}")
    return keras.Model([x, label], out, name="discriminator")


def _make_optimizer(cfg: GanConfig, name: str) -> keras.optimizers.Optimizer:
    if cfg.variant == "cgan-seed":  # the seed: Adam(lr, beta_1), Keras' default beta_2
        return keras.optimizers.Adam(cfg.lr, beta_1=cfg.beta1, name=name)
    return keras.optimizers.Adam(cfg.lr, beta_1=cfg.beta1, beta_2=cfg.beta2, name=name)


def _make_cgan_step(cfg: GanConfig, G: keras.Model, D: keras.Model, g_opt, d_opt):
    """One seed-style iteration: D on real (target 1), D on fake (target 0), G through D."""
    bce = keras.losses.BinaryCrossentropy()

    def step(xr, lab, z, z2, lab2):
        # The seed made D's fakes with generator.predict: BatchNorm in inference mode.
        fake = G([z, lab], training=False)
        ones = tf.ones([tf.shape(xr)[0], 1])
        zeros = tf.zeros([tf.shape(fake)[0], 1])
        with tf.GradientTape() as tape:
            p_real = D([xr, lab], training=True)
            l_real = bce(ones, p_real)
        d_opt.apply_gradients(zip(tape.gradient(l_real, D.trainable_variables), D.trainable_variables))
        with tf.GradientTape() as tape:
            p_fake = D([fake, lab], training=True)
            l_fake = bce(zeros, p_fake)
        d_opt.apply_gradients(zip(tape.gradient(l_fake, D.trainable_variables), D.trainable_variables))
        with tf.GradientTape() as tape:
            p_gen = D([G([z2, lab2], training=True), lab2], training=True)
            g_loss = bce(ones, p_gen)
        g_opt.apply_gradients(zip(tape.gradient(g_loss, G.trainable_variables), G.trainable_variables))
        # Keras' train_on_batch accuracy: the forward pass before each update, threshold 0.5
        acc = 0.5 * (tf.reduce_mean(tf.cast(p_real > 0.5, tf.float32))
                     + tf.reduce_mean(tf.cast(p_fake <= 0.5, tf.float32)))
        return tf.stack([0.5 * (l_real + l_fake), g_loss, acc, 0.0, 0.0])

    return step


def _make_wgan_step(cfg: GanConfig, G: keras.Model, D: keras.Model, g_opt, d_opt, post,
                    G_ema: keras.Model | None):
    """n_critic critic updates (WGAN-GP), one generator update and the EMA update, in one call."""
    gp_w = float(cfg.gp_weight)
    ema_pairs = list(zip(G_ema.weights, G.weights)) if G_ema is not None else []

    def critic_update(xr, lab, z, eps):
        fake = post(G([z, lab], training=False))
        with tf.GradientTape() as tape:
            c_real = D([xr, lab], training=True)
            c_fake = D([fake, lab], training=True)
            mix = eps * xr + (1.0 - eps) * fake
            with tf.GradientTape() as gp_tape:
                gp_tape.watch(mix)
                c_mix = D([mix, lab], training=True)
            grad = gp_tape.gradient(c_mix, mix)
            norm = tf.sqrt(tf.reduce_sum(tf.square(grad), axis=1) + 1e-12)
            gp = tf.reduce_mean(tf.square(norm - 1.0))
            w = tf.reduce_mean(c_real) - tf.reduce_mean(c_fake)
            loss = -w + gp_w * gp
        d_opt.apply_gradients(zip(tape.gradient(loss, D.trainable_variables), D.trainable_variables))
        both = tf.concat([c_real, c_fake], axis=0)[:, 0]
        med = tf.sort(both)[tf.shape(both)[0] // 2]
        acc = 0.5 * (tf.reduce_mean(tf.cast(c_real[:, 0] > med, tf.float32))
                     + tf.reduce_mean(tf.cast(c_fake[:, 0] <= med, tf.float32)))
        return loss, w, gp, acc

    def step(xr, lab, z, eps, z2, lab2):
        # xr: (n_critic, B, F) etc.; a Python loop: n_critic is small and static
        tot = tf.zeros([4])
        for i in range(cfg.n_critic):
            tot += tf.stack(critic_update(xr[i], lab[i], z[i], eps[i]))
        tot /= cfg.n_critic
        with tf.GradientTape() as tape:
            g_loss = -tf.reduce_mean(D([post(G([z2, lab2], training=True)), lab2], training=True))
        g_opt.apply_gradients(zip(tape.gradient(g_loss, G.trainable_variables), G.trainable_variables))
        if ema_pairs:
            # warm-up (as tf.train.ExponentialMovingAverage with num_updates): early on the
            # average must not be dominated by the random initial weights
            t = tf.cast(g_opt.iterations, tf.float32)
            decay = tf.minimum(float(cfg.g_ema), (1.0 + t) / (10.0 + t))
            for e, v in ema_pairs:
                e.assign(decay * e + (1.0 - decay) * v)
        return tf.stack([tot[0], g_loss, tot[3], tot[1], tot[2]])

    return step

