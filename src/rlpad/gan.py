"""Stage 3: a class-conditional GAN over transition features x = [e(s), e(s') - e(s)].

Two variants, chosen by ``GanConfig.variant``:

* ``cgan-seed`` -- the seed's Keras-GAN cGAN, kept as the baseline: label embedding multiplied
  into the noise (G) and into the input (D), LeakyReLU + BatchNorm(0.8) generator, dropout
  discriminator, binary cross-entropy, two D updates (real, then fake) and one G update per
  step, G's labels uniform, trained on raw (unnormalised) features, restart when D's accuracy
  sits outside [restart_low, restart_high] or at exactly 50 % for restart_window steps.
* ``wgan-gp`` -- the stabilised one: per-dimension standardised features, one-hot label
  concatenated to the inputs of both nets, no BatchNorm in the critic (it would break the
  per-sample gradient penalty), WGAN-GP loss with n_critic critic steps per G step; generator
  outputs are clipped to the observed per-dimension range (``GanConfig.clip_to_range``), and
  samples come from an exponential moving average of G's weights (``GanConfig.g_ema``): on
  synthetic stage-2-like data the average cut the C2ST accuracy from 0.85 to 0.75 at equal cost.

Everything random in training comes from a seeded numpy Generator (minibatch indices, noise,
gradient-penalty mixing) or from explicitly seeded Keras layers (initialisers, dropout), so a
fit is deterministic on CPU and a checkpoint holds the whole state: weights (.weights.h5),
optimiser and dropout-seed variables (HDF5), step, numpy RNG state and history (JSON).
No pickle anywhere.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import h5py
import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from rlpad.config import GanConfig  # noqa: E402
from rlpad.h5arrays import assign_arrays, write_arrays  # noqa: E402

FORMAT = "rlpad-gan"
FORMAT_VERSION = 1
CKPT_MARKER = "gan_ckpt.json"  # written last: a checkpoint folder without it is not a checkpoint
CKPT_PREFIX = "ckpt-"
_SAMPLE_BATCH = 8192

ProgressFn = Callable[[int, int, dict], None]
CheckpointFn = Callable[[str, int], None]


class GanError(RuntimeError):
    """A problem with GAN inputs or state that a user can act on."""


# ---------------------------------------------------------------------------------------------
# models
# ---------------------------------------------------------------------------------------------
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


# ---------------------------------------------------------------------------------------------
# normalisation
# ---------------------------------------------------------------------------------------------
@dataclass
class NormStats:
    """Per-dimension affine map into the space the nets see, plus that space's observed range."""

    mean: np.ndarray
    std: np.ndarray
    lo: np.ndarray  # observed min / max in the normalised space (for the output clip)
    hi: np.ndarray

    @staticmethod
    def fit(x: np.ndarray, standardise: bool) -> "NormStats":
        d = x.shape[1]
        if standardise:
            mean = x.mean(axis=0, dtype=np.float64)
            std = x.std(axis=0, dtype=np.float64)
            std = np.where(std > 1e-8 * (1.0 + np.abs(mean)), std, 1.0)  # constant dims stay put
        else:
            mean, std = np.zeros(d), np.ones(d)
        z = (x - mean) / std
        return NormStats(mean.astype(np.float32), std.astype(np.float32),
                         z.min(axis=0).astype(np.float32), z.max(axis=0).astype(np.float32))

    def forward(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.mean) / self.std).astype(np.float32)

    def inverse(self, z: np.ndarray) -> np.ndarray:
        return (z * self.std + self.mean).astype(np.float32)

    def to_json(self) -> dict:
        return {k: getattr(self, k).tolist() for k in ("mean", "std", "lo", "hi")}

    @staticmethod
    def from_json(d: dict) -> "NormStats":
        return NormStats(*(np.asarray(d[k], np.float32) for k in ("mean", "std", "lo", "hi")))


def _postprocess_fn(cfg: GanConfig, norm: NormStats):
    """The map from G's linear output to a sample (in normalised space). wgan-gp clips to the
    observed range: features have hard edges (ReLU zeros, stage 2's clip at +-400/+-150) that a
    linear output can only blur, and padding data should not leave the data's support anyway."""
    if cfg.variant == "wgan-gp" and cfg.clip_to_range:
        lo = tf.constant(norm.lo)
        hi = tf.constant(norm.hi)
        return lambda raw: tf.clip_by_value(raw, lo, hi)
    return lambda raw: raw


# ---------------------------------------------------------------------------------------------
# the fitted model
# ---------------------------------------------------------------------------------------------
@dataclass
class FittedGan:
    """A trained conditional generator plus everything needed to sample from it and audit it."""

    generator: keras.Model
    discriminator: keras.Model | None
    cfg: GanConfig
    feat_dim: int
    n_classes: int
    class_probs: np.ndarray
    norm: NormStats
    history: list[dict] = field(default_factory=list)
    restarts: int = 0
    info: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        post = _postprocess_fn(self.cfg, self.norm)
        gen = self.generator

        @tf.function(input_signature=[tf.TensorSpec([None, self.cfg.latent_dim], tf.float32),
                                      tf.TensorSpec([None], tf.int32)], reduce_retracing=True)
        def _gen(z, lab):
            return post(gen([z, lab], training=False))

        self._gen = _gen

    @property
    def mean(self) -> np.ndarray:
        return self.norm.mean

    @property
    def std(self) -> np.ndarray:
        return self.norm.std

    def sample(self, n: int, *, labels: np.ndarray | None = None,
               class_probs: np.ndarray | None = None, seed: int = 0,
               batch_size: int = _SAMPLE_BATCH) -> tuple[np.ndarray, np.ndarray]:
        """n samples: x float32 (n, feat_dim) in the raw feature space, labels int32 (n,).
        Labels are the given ones, else drawn from class_probs, else from the data's class
        frequencies. Deterministic given seed."""
        rng = np.random.default_rng(seed)
        if labels is not None:
            labels = np.asarray(labels, dtype=np.int32).reshape(-1)
            if len(labels) != n:
                raise GanError(f"sample: got {len(labels)} labels for n={n}")
            if n and (labels.min() < 0 or labels.max() >= self.n_classes):
                raise GanError(f"sample: labels must be in [0, {self.n_classes})")
        else:
            p = self.class_probs if class_probs is None else np.asarray(class_probs, np.float64)
            if p.shape != (self.n_classes,) or np.any(p < 0) or p.sum() <= 0:
                raise GanError(f"sample: class_probs must be {self.n_classes} non-negative numbers")
            labels = rng.choice(self.n_classes, size=n, p=p / p.sum()).astype(np.int32)
        out = np.empty((n, self.feat_dim), np.float32)
        for i in range(0, n, batch_size):
            j = min(n, i + batch_size)
            z = rng.standard_normal((j - i, self.cfg.latent_dim), dtype=np.float32)
            out[i:j] = self._gen(tf.constant(z), tf.constant(labels[i:j])).numpy()
        return self.norm.inverse(out), labels

    def save(self, directory: str | os.PathLike) -> list[str]:
        """Write generator.weights.h5, discriminator.weights.h5 (if any) and gan.json;
        returns the file names."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        names = ["generator.weights.h5"]
        self.generator.save_weights(str(d / "generator.weights.h5"))
        if self.discriminator is not None:
            self.discriminator.save_weights(str(d / "discriminator.weights.h5"))
            names.append("discriminator.weights.h5")
        meta = {
            "format": FORMAT, "format_version": FORMAT_VERSION,
            "cfg": dataclasses.asdict(self.cfg), "feat_dim": self.feat_dim,
            "n_classes": self.n_classes, "class_probs": self.class_probs.tolist(),
            "norm": self.norm.to_json(), "history": self.history, "restarts": self.restarts,
            "info": self.info, "keras_version": keras.__version__,
        }
        _atomic_write(d / "gan.json", json.dumps(_jsonable(meta), indent=1).encode())
        names.append("gan.json")
        return names

    @staticmethod
    def load(directory: str | os.PathLike) -> "FittedGan":
        """Rebuild the architecture from gan.json (code, not deserialised objects) and load the
        weights into it."""
        d = Path(directory)
        meta = json.loads((d / "gan.json").read_text())
        if meta.get("format") != FORMAT:
            raise GanError(f"{d / 'gan.json'} is not an rlpad GAN file")
        if meta.get("format_version") != FORMAT_VERSION:
            raise GanError(f"{d / 'gan.json'}: format version {meta.get('format_version')} "
                           f"is not supported (expected {FORMAT_VERSION}); refit stage 3")
        cfg = gan_config_from_dict(meta["cfg"])
        feat_dim, n_classes = int(meta["feat_dim"]), int(meta["n_classes"])
        norm = NormStats.from_json(meta["norm"])
        gen = build_generator(cfg, feat_dim, n_classes)
        gen.load_weights(str(d / "generator.weights.h5"))
        disc = None
        if (d / "discriminator.weights.h5").exists():
            disc = build_discriminator(cfg, feat_dim, n_classes)
            disc.load_weights(str(d / "discriminator.weights.h5"))
        return FittedGan(gen, disc, cfg, feat_dim, n_classes,
                         np.asarray(meta["class_probs"], np.float64), norm,
                         meta.get("history", []), int(meta.get("restarts", 0)), meta.get("info", {}))


def gan_config_from_dict(d: dict) -> GanConfig:
    """GanConfig from a stored dict; unknown keys are an error, missing ones take defaults."""
    known = {f.name for f in dataclasses.fields(GanConfig)}
    unknown = set(d) - known
    if unknown:
        raise GanError(f"stored GAN config has unknown keys {sorted(unknown)}")
    return GanConfig(**d)


def holdout_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified split of row indices into (train, holdout): about `fraction` of every class is
    held out (at least one row of a class with two or more, none of a singleton class)."""
    labels = np.asarray(labels).reshape(-1)
    rng = np.random.default_rng(seed)
    hold = []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        k = int(round(fraction * len(idx)))
        if fraction > 0 and len(idx) >= 2:
            k = min(max(k, 1), len(idx) - 1)
        hold.append(idx[:k])
    hold_idx = np.sort(np.concatenate(hold)) if hold else np.zeros(0, np.int64)
    mask = np.ones(len(labels), bool)
    mask[hold_idx] = False
    return np.flatnonzero(mask), hold_idx


def to_transitions(x: np.ndarray, labels: np.ndarray, class_table: np.ndarray,
                   embed_dim: int) -> dict[str, np.ndarray]:
    """Feature rows [e(s), e(s') - e(s)] + class ids -> embedding-space transitions.
    action int32, reward_sign float32 (-1/0/1), terminal bool."""
    x = np.asarray(x, np.float32)
    if x.ndim != 2 or x.shape[1] != 2 * embed_dim:
        raise GanError(f"to_transitions: x has shape {x.shape}, expected (n, {2 * embed_dim})")
    labels = np.asarray(labels, np.int64)
    table = np.asarray(class_table)
    if table.ndim != 2 or table.shape[1] != 3:
        raise GanError(f"to_transitions: class_table must have shape (K, 3), got {table.shape}")
    if len(labels) and (labels.min() < 0 or labels.max() >= len(table)):
        raise GanError(f"to_transitions: labels must be in [0, {len(table)})")
    e_s = x[:, :embed_dim].copy()
    rows = table[labels]
    return {
        "e_s": e_s,
        "e_next": e_s + x[:, embed_dim:],
        "action": rows[:, 0].astype(np.int32),
        "reward_sign": rows[:, 1].astype(np.float32),
        "terminal": rows[:, 2].astype(bool),
    }


# ---------------------------------------------------------------------------------------------
# training
# ---------------------------------------------------------------------------------------------
def _derived_seed(seed: int, attempt: int) -> int:
    return int(np.random.SeedSequence([int(seed), int(attempt), 0x9A4]).generate_state(1)[0] % (2**31 - 1))


def _make_cgan_step(cfg: GanConfig, G: keras.Model, D: keras.Model, g_opt, d_opt):
    """One seed-style iteration: D on real (target 1), D on fake (target 0), G through D."""
    bce = keras.losses.BinaryCrossentropy()

    @tf.function
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

    @tf.function
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


_METRICS = ("d_loss", "g_loss", "d_acc", "w_dist", "gp")


@dataclass
class _TrainState:
    """Everything besides model/optimizer variables that a resumed fit needs."""

    attempt: int = 0
    restarts: int = 0
    step: int = 0            # steps done in the current attempt
    total_steps: int = 0     # steps done across attempts
    low: int = 0             # consecutive steps with D accuracy < restart_low
    high: int = 0            # ... > restart_high
    half: int = 0            # ... == 0.5 exactly
    win_sum: list = field(default_factory=lambda: [0.0] * len(_METRICS))
    win_n: int = 0
    history: list = field(default_factory=list)
    restart_log: list = field(default_factory=list)
    rng_state: dict | None = None
    gave_up: bool = False    # max_restarts used up; training went on without further restarts


def _data_digest(x: np.ndarray, labels: np.ndarray) -> str:
    """Cheap fingerprint of the training data (shape + a strided subset of rows)."""
    h = hashlib.sha256(f"{x.shape}|{labels.shape}".encode())
    stride = max(1, len(x) // 4096)
    h.update(np.ascontiguousarray(x[::stride]).tobytes())
    h.update(np.ascontiguousarray(labels[::stride]).astype(np.int64).tobytes())
    return h.hexdigest()[:16]


def _fingerprint(cfg: GanConfig, seed: int, digest: str, n_classes: int) -> str:
    d = dataclasses.asdict(cfg)
    for k in ("steps", "checkpoint_every", "log_every"):  # a resume may extend the budget / change cadence
        d.pop(k)
    blob = json.dumps({"cfg": d, "seed": seed, "data": digest, "k": n_classes}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def fit_gan(x: np.ndarray, labels: np.ndarray, n_classes: int, cfg: GanConfig, seed: int, *,
            progress: ProgressFn | None = None, state_dir: str | os.PathLike | None = None,
            on_checkpoint: CheckpointFn | None = None) -> FittedGan:
    """Fit a conditional GAN on features x (n, F) with int labels in [0, n_classes).

    Deterministic given seed (CPU). With state_dir, a checkpoint is written every
    cfg.checkpoint_every steps (folder ckpt-<step>/, marker gan_ckpt.json last) and a later call
    resumes from the newest one; on_checkpoint(folder, step) is called after each (e.g. to
    upload it). progress(step, total, info) is called every cfg.log_every steps.
    """
    t0 = time.perf_counter()
    x = np.asarray(x, np.float32)
    labels = np.asarray(labels).reshape(-1)
    if x.ndim != 2 or len(x) != len(labels) or len(x) == 0:
        raise GanError(f"fit_gan: need x (n, F) and labels (n,), got {x.shape} and {labels.shape}")
    if not np.all(np.isfinite(x)):
        raise GanError("fit_gan: x has NaN or inf values")
    if labels.min() < 0 or labels.max() >= n_classes:
        raise GanError(f"fit_gan: labels must lie in [0, {n_classes})")
    labels = labels.astype(np.int32)
    n, feat_dim = x.shape
    norm = NormStats.fit(x, standardise=cfg.variant == "wgan-gp")
    xs = norm.forward(x)
    class_probs = np.bincount(labels, minlength=n_classes).astype(np.float64) / n
    post = _postprocess_fn(cfg, norm)
    bs = int(cfg.batch_size)
    fp = _fingerprint(cfg, seed, _data_digest(x, labels), n_classes)

    st = _TrainState()
    resume_dir = _find_checkpoint(state_dir) if state_dir is not None else None
    resumed_from = None
    if resume_dir is not None:
        marker = json.loads((resume_dir / CKPT_MARKER).read_text())
        if marker.get("fingerprint") != fp:
            raise GanError(f"checkpoint in {resume_dir} was made with another config, seed or "
                           "data; delete it (or rerun with --force) to start over")
        st = _TrainState(**marker["state"])
        resumed_from = {"attempt": st.attempt, "step": st.step, "total_steps": st.total_steps}

    keras.utils.set_random_seed(_derived_seed(seed, st.attempt))
    while True:  # one pass per attempt (restart = new attempt with a new derived seed)
        aseed = _derived_seed(seed, st.attempt)
        G = build_generator(cfg, feat_dim, n_classes, seed=aseed)
        D = build_discriminator(cfg, feat_dim, n_classes, seed=aseed)
        g_opt, d_opt = _make_optimizer(cfg, "g_adam"), _make_optimizer(cfg, "d_adam")
        g_opt.build(G.trainable_variables)
        d_opt.build(D.trainable_variables)
        # Same seed -> same initial weights as G; the averaged copy is the one we sample from
        G_ema = (build_generator(cfg, feat_dim, n_classes, seed=aseed)
                 if cfg.variant == "wgan-gp" and cfg.g_ema > 0 else None)
        rng = np.random.default_rng(aseed)
        if resume_dir is not None:
            _restore_checkpoint(resume_dir, G, D, g_opt, d_opt, G_ema)
            rng.bit_generator.state = st.rng_state
            resume_dir = None
        if cfg.variant == "cgan-seed":
            step_fn = _make_cgan_step(cfg, G, D, g_opt, d_opt)
        else:
            step_fn = _make_wgan_step(cfg, G, D, g_opt, d_opt, post, G_ema)

        restarted = False
        t_log, s_log = time.perf_counter(), st.step
        while st.step < cfg.steps:
            if cfg.variant == "cgan-seed":
                idx = rng.integers(0, n, bs)
                z = rng.standard_normal((bs, cfg.latent_dim), dtype=np.float32)
                z2 = rng.standard_normal((bs, cfg.latent_dim), dtype=np.float32)
                lab2 = rng.integers(0, n_classes, bs).astype(np.int32)  # the seed: uniform labels
                m = step_fn(xs[idx], labels[idx], z, z2, lab2).numpy()
            else:
                k = cfg.n_critic
                idx = rng.integers(0, n, (k, bs))
                z = rng.standard_normal((k, bs, cfg.latent_dim), dtype=np.float32)
                eps = rng.random((k, bs, 1), dtype=np.float32)
                z2 = rng.standard_normal((bs, cfg.latent_dim), dtype=np.float32)
                lab2 = labels[rng.integers(0, n, bs)]  # data's class frequencies
                m = step_fn(xs[idx], labels[idx], z, eps, z2, lab2).numpy()
            st.step += 1
            st.total_steps += 1
            st.win_sum = [a + float(b) for a, b in zip(st.win_sum, m)]
            st.win_n += 1

            failure = _failure(cfg, st, m)
            if failure:
                if st.restarts < cfg.max_restarts:
                    st.restart_log.append({"attempt": st.attempt, "step": st.step, "reason": failure})
                    st.history.append({"step": st.step, "attempt": st.attempt, "restart": failure})
                    st.restarts += 1
                    st.attempt += 1
                    st.step = st.low = st.high = st.half = st.win_n = 0
                    st.win_sum = [0.0] * len(_METRICS)
                    restarted = True
                    break
                if not np.all(np.isfinite(m)):
                    raise GanError(f"GAN training diverged (non-finite loss at step {st.step}) "
                                   f"and max_restarts={cfg.max_restarts} is used up")
                st.gave_up = True

            if st.step % cfg.log_every == 0 or st.step == cfg.steps:
                rec = {"step": st.step, "attempt": st.attempt}
                rec.update({k: v / st.win_n for k, v in zip(_METRICS, st.win_sum)})
                if cfg.variant == "cgan-seed":
                    rec.pop("w_dist"), rec.pop("gp")
                st.history.append(rec)
                st.win_sum, st.win_n = [0.0] * len(_METRICS), 0
                if progress is not None:
                    now = time.perf_counter()
                    info = dict(rec, restarts=st.restarts,
                                steps_per_s=(st.step - s_log) / max(now - t_log, 1e-9))
                    t_log, s_log = now, st.step
                    progress(st.step, cfg.steps, info)
            # also at the end, so a later call with more steps continues from here
            if state_dir is not None and (st.step % cfg.checkpoint_every == 0 or st.step == cfg.steps):
                st.rng_state = rng.bit_generator.state
                path = _save_checkpoint(Path(state_dir), st, fp, G, D, g_opt, d_opt, G_ema)
                if on_checkpoint is not None:
                    on_checkpoint(str(path), st.total_steps)  # monotonic across restarts
        if not restarted:
            break

    info = {"seed": int(seed), "steps": st.step, "total_steps": st.total_steps,
            "attempts": st.attempt + 1, "restart_log": st.restart_log, "gave_up": st.gave_up,
            "n_train": int(n), "ema": G_ema is not None, "resumed_from": resumed_from,
            "wall_s": round(time.perf_counter() - t0, 3)}
    return FittedGan(G if G_ema is None else G_ema, D, cfg, feat_dim, n_classes, class_probs, norm,
                     st.history, st.restarts, info)


def _failure(cfg: GanConfig, st: _TrainState, m: np.ndarray) -> str | None:
    """The restart rule; updates the consecutive-step counters in st."""
    if not np.all(np.isfinite(m)):
        return "non-finite loss"
    if cfg.variant != "cgan-seed":
        return None
    acc = float(m[2])
    st.low = st.low + 1 if acc < cfg.restart_low else 0
    st.high = st.high + 1 if acc > cfg.restart_high else 0
    st.half = st.half + 1 if acc == 0.5 else 0
    w = cfg.restart_window
    if st.low >= w:
        return f"D accuracy < {cfg.restart_low} for {w} steps"
    if st.high >= w:
        return f"D accuracy > {cfg.restart_high} for {w} steps"
    if st.half >= w:
        return f"D accuracy == 0.5 for {w} steps"
    return None


# ---------------------------------------------------------------------------------------------
# checkpoints
# ---------------------------------------------------------------------------------------------
def _find_checkpoint(state_dir: str | os.PathLike) -> Path | None:
    """The newest complete checkpoint: state_dir itself (as restored flat by Store.load_checkpoint)
    or state_dir/ckpt-<step>/."""
    d = Path(state_dir)
    if not d.exists():
        return None
    best: tuple[int, Path] | None = None
    cands = [d] + sorted(p for p in d.iterdir()
                         if p.is_dir() and p.name.startswith(CKPT_PREFIX) and p.name[len(CKPT_PREFIX):].isdigit())
    for p in cands:
        mk = p / CKPT_MARKER
        if mk.exists():
            try:
                total = int(json.loads(mk.read_text())["state"]["total_steps"])
            except (ValueError, KeyError, json.JSONDecodeError):
                continue
            if best is None or total > best[0]:
                best = (total, p)
    return None if best is None else best[1]


def _extra_vars(model: keras.Model) -> list:
    """Model variables that .weights.h5 does not hold (dropout seed-generator states)."""
    saved = {id(v) for v in model.weights}
    return [v for v in model.variables if id(v) not in saved]


def _save_checkpoint(state_dir: Path, st: _TrainState, fp: str, G, D, g_opt, d_opt, G_ema) -> Path:
    state_dir.mkdir(parents=True, exist_ok=True)
    final = state_dir / f"{CKPT_PREFIX}{st.total_steps:09d}"
    tmp = state_dir / f".{final.name}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    G.save_weights(str(tmp / "generator.weights.h5"))
    D.save_weights(str(tmp / "discriminator.weights.h5"))
    if G_ema is not None:
        G_ema.save_weights(str(tmp / "generator_ema.weights.h5"))
    with h5py.File(tmp / "train_state.h5", "w") as f:
        for gname, vs in (("g_opt", g_opt.variables), ("d_opt", d_opt.variables),
                          ("g_extra", _extra_vars(G)), ("d_extra", _extra_vars(D))):
            write_arrays(f.create_group(gname), (v.numpy() for v in vs))
    marker = {"format": FORMAT + "-checkpoint", "format_version": FORMAT_VERSION,
              "fingerprint": fp, "state": _jsonable(dataclasses.asdict(st)), "time": time.time()}
    with open(tmp / CKPT_MARKER, "w") as fh:  # the marker last: it is what makes this a checkpoint
        json.dump(marker, fh)
        fh.flush()
        os.fsync(fh.fileno())
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    for p in state_dir.iterdir():  # keep only the newest checkpoint
        if p.is_dir() and p.name.startswith(CKPT_PREFIX) and p != final:
            shutil.rmtree(p, ignore_errors=True)
    return final


def _restore_checkpoint(d: Path, G, D, g_opt, d_opt, G_ema) -> None:
    G.load_weights(str(d / "generator.weights.h5"))
    D.load_weights(str(d / "discriminator.weights.h5"))
    if G_ema is not None:
        G_ema.load_weights(str(d / "generator_ema.weights.h5"))
    with h5py.File(d / "train_state.h5", "r") as f:
        for gname, vs in (("g_opt", g_opt.variables), ("d_opt", d_opt.variables),
                          ("g_extra", _extra_vars(G)), ("d_extra", _extra_vars(D))):
            try:
                assign_arrays(vs, f[gname], f"checkpoint {d}: {gname}")
            except ValueError as e:
                raise GanError(str(e)) from None


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------
def _jsonable(o: Any) -> Any:
    """JSON-safe copy: numpy scalars/arrays -> Python; non-finite floats -> None."""
    if isinstance(o, dict):
        return {str(k): _jsonable(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_jsonable(v) for v in o]
    if isinstance(o, np.ndarray):
        return _jsonable(o.tolist())
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (float, np.floating)):
        f = float(o)
        return f if math.isfinite(f) else None
    return o


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
