"""Q-networks built as two named parts: encoder (below the cut) and head (above).

The cut is the last hidden Dense layer *before* its ReLU (the seed's embedding):
encoder(s) = e(s), head(e) = Dense(actions)(ReLU(e)). Stage 2 embeds with the
encoder; stage 4 refits a fresh head on embeddings and plugs it back on.
Architectures live here in code; files hold weights only (no pickled objects).
"""
from __future__ import annotations

from dataclasses import dataclass

import keras
from keras import layers

from .config import QNetConfig


@dataclass
class QNet:
    encoder: keras.Model
    head: keras.Model
    model: keras.Model  # head(encoder(x))

    @property
    def embed_dim(self) -> int:
        return int(self.encoder.output.shape[-1])


def build_encoder(cfg: QNetConfig, obs_shape: tuple[int, ...], name: str = "encoder") -> keras.Model:
    if cfg.arch == "nature-cnn":
        x_in = keras.Input(obs_shape, dtype="uint8", name="frames")  # (stack, 84, 84)
        x = layers.Rescaling(1.0 / 255.0)(x_in)
        # channels-last for Conv2D on CPU; transposing floats (oneDNN) is faster than uint8
        x = layers.Permute((2, 3, 1))(x)
        x = layers.Conv2D(32, 8, strides=4, activation="relu")(x)
        x = layers.Conv2D(64, 4, strides=2, activation="relu")(x)
        x = layers.Conv2D(64, 3, strides=1, activation="relu")(x)
        x = layers.Flatten()(x)
        e = layers.Dense(cfg.embed_dim, name="cut")(x)
    elif cfg.arch == "minatar-cnn":  # MinAtar's own DQN (examples/dqn.py): conv 16 3x3, dense
        x_in = keras.Input(obs_shape, dtype="uint8", name="channels")  # (10, 10, channels)
        x = layers.Rescaling(1.0)(x_in)  # to float
        x = layers.Conv2D(16, 3, strides=1, activation="relu")(x)
        x = layers.Flatten()(x)
        e = layers.Dense(cfg.embed_dim, name="cut")(x)
    else:
        x_in = keras.Input(obs_shape, dtype="float32", name="obs")
        x = x_in
        for i, width in enumerate(cfg.hidden[:-1]):
            x = layers.Dense(width, activation="relu", name=f"hidden{i}")(x)
        e = layers.Dense(cfg.hidden[-1], name="cut")(x)
    return keras.Model(x_in, e, name=name)


def build_head(embed_dim: int, n_actions: int, name: str = "head") -> keras.Model:
    e_in = keras.Input((embed_dim,), name="embedding")
    h = layers.ReLU()(e_in)
    q = layers.Dense(n_actions, name="q")(h)
    return keras.Model(e_in, q, name=name)


def build_qnet(cfg: QNetConfig, obs_shape: tuple[int, ...], n_actions: int) -> QNet:
    encoder = build_encoder(cfg, obs_shape)
    head = build_head(int(encoder.output.shape[-1]), n_actions)
    x_in = keras.Input(obs_shape, dtype=encoder.input.dtype, name="state")
    model = keras.Model(x_in, head(encoder(x_in)), name="qnet")
    return QNet(encoder, head, model)


def split_at_cut(qnet: QNet, qcfg: QNetConfig, obs_shape: tuple[int, ...]) -> QNet:
    """Independent encoder and head models holding copies of qnet's weights: what stage 2
    embeds with and what stage 4 plugs a refitted head onto."""
    encoder = build_encoder(qcfg, obs_shape, name="encoder_cut")
    encoder.set_weights(qnet.encoder.get_weights())
    head = build_head(qnet.embed_dim, int(qnet.head.output.shape[-1]), name="head_cut")
    head.set_weights(qnet.head.get_weights())
    x_in = keras.Input(obs_shape, dtype=encoder.input.dtype, name="state")
    return QNet(encoder, head, keras.Model(x_in, head(encoder(x_in)), name="qnet_cut"))


def load_qnet(qcfg: QNetConfig, obs_shape: tuple[int, ...], n_actions: int, path: str) -> QNet:
    qnet = build_qnet(qcfg, obs_shape, n_actions)
    qnet.model.load_weights(path)
    return qnet
