"""A fitted generator: normalisation, sampling, save and load (weights + JSON; no pickle)."""
from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from ..config import GanConfig  # noqa: E402
from .common import _SAMPLE_BATCH, FORMAT, FORMAT_VERSION, GanError, _atomic_write, _jsonable  # noqa: E402
from . import kinds  # noqa: E402

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
    if kinds.clips(cfg):
        lo = tf.constant(norm.lo)
        hi = tf.constant(norm.hi)
        return lambda raw: tf.clip_by_value(raw, lo, hi)
    return lambda raw: raw


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
        gen = kinds.generate_fn(self.cfg, self.generator, self.feat_dim)
        self._noise_width = kinds.noise_width(self.cfg, self.feat_dim)

        @tf.function(input_signature=[tf.TensorSpec([None, self._noise_width], tf.float32),
                                      tf.TensorSpec([None], tf.int32)], reduce_retracing=True)
        def _gen(z, lab):
            return post(gen(z, lab))

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
            z = rng.standard_normal((j - i, self._noise_width), dtype=np.float32)
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
        gen, disc = kinds.build_nets(cfg, feat_dim, n_classes)
        gen.load_weights(str(d / "generator.weights.h5"))
        if disc is not None and (d / "discriminator.weights.h5").exists():
            disc.load_weights(str(d / "discriminator.weights.h5"))
        else:
            disc = None
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

