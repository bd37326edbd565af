"""Deep Split-Q (Lin, Cecchi, Bouneffouf, Reinen and Rish, "A Story of Two Streams", AAMAS 2020,
arXiv 1906.11286) on stage 1's DQN loop: two linear heads over one encoder, cut at the same layer.

    Q⁺(s) = W⁺ ReLU(e(s)) + b⁺   learns from w⁺ r⁺ (r⁺ = max(r, 0)) with memory m⁺
    Q⁻(s) = W⁻ ReLU(e(s)) + b⁻   learns from w⁻ r⁻ (r⁻ = min(r, 0)) with memory m⁻
and the agent acts greedily on Q⁺ + Q⁻, as the authors' code does (the weights enter the
updates, not the action). Q⁺ + Q⁻ = (W⁺ + W⁻) ReLU(e) + (b⁺ + b⁻) is exactly one linear head on
the same cut, so stage 1 ships that sum as the standard Q-net (qnet.weights.h5) and stages 2-4
run unchanged; both streams are shipped too (streams.weights.h5).

Where the deep version departs from the tabular rule (`split_q_rule.update`, the reference):
- A stream's tabular step Q <- m Q + alpha (w r + gamma Q(s', a*) - Q) has no step size to copy
  into a regression target. The net regresses each stream on the fixed point of that step at
  alpha = 1, y = (w r + gamma Q̄(s', a*)) / (2 - m), with Q̄ the target net; m = 1 gives DQN's
  target. (The literal alpha = 1 step, y = (m - 1) Q + w r + gamma Q̄', flips sign for m < 1.)
  Drawn memories are clipped to [0, 1]: above 1 a stream's value would grow without bound.
- The authors draw the four parameters around a preset at every tabular update; here at every
  gradient step (one draw per minibatch), from an RNG the checkpoint keeps.
- Both stream heads start at zero, as the authors' tables do, so a stream that never learns
  (Q⁻ on a game without negative rewards, under update = "sign") adds nothing to the sum.
"""
from __future__ import annotations

import json
import os

import numpy as np
import tensorflow as tf
import keras
from keras import layers

from ..config import Config
from ..dqn import DQNAgent, train_dqn
from ..envs import EnvSpec
from ..qnet import QNet, build_encoder, build_qnet
from ..seeding import derive_seed
from .split_q_rule import StreamParams, draw_params


def build_split_qnet(cfg: Config, spec: EnvSpec) -> tuple[QNet, keras.Model]:
    """(QNet whose head outputs Q⁺ + Q⁻, the model of both streams (batch, 2, actions))."""
    encoder = build_encoder(cfg.qnet, spec.obs_shape)
    n_a = spec.n_actions
    e_in = keras.Input((int(encoder.output.shape[-1]),), name="embedding")
    h = layers.ReLU()(e_in)
    streams = layers.Dense(2 * n_a, kernel_initializer="zeros", bias_initializer="zeros",
                           name="streams")(h)
    pair = layers.Reshape((2, n_a))(streams)  # [:, 0] = Q⁺, [:, 1] = Q⁻
    q = layers.Lambda(lambda t: t[:, 0] + t[:, 1], output_shape=(n_a,), name="q")(pair)
    stream_head = keras.Model(e_in, pair, name="stream_head")
    head = keras.Model(e_in, q, name="head")
    x_in = keras.Input(spec.obs_shape, dtype=encoder.input.dtype, name="state")
    emb = encoder(x_in)
    model = keras.Model(x_in, head(emb), name="qnet")
    return QNet(encoder, head, model), keras.Model(x_in, stream_head(emb), name="streams")


class SplitQAgent(DQNAgent):
    """DQNAgent's acting, target syncs and checkpoints; Split-Q's net and update."""

    def __init__(self, cfg: Config, spec: EnvSpec):
        self.learner, self.qnet_cfg = cfg.learner, cfg.qnet
        self._streams: list[keras.Model] = []
        # One draw of (m⁺, w⁺, m⁻, w⁻) per gradient step, from its own stream of the run's seed.
        self.param_rng = np.random.default_rng(derive_seed(cfg.seed, "split-q-params"))
        super().__init__(cfg, spec)  # builds online then target (_build_net) and traces the steps

    @property
    def streams_online(self) -> keras.Model:
        return self._streams[0]

    @property
    def streams_target(self) -> keras.Model:
        return self._streams[1]

    def _build_net(self, cfg: Config) -> QNet:
        qnet, streams = build_split_qnet(cfg, self.spec)
        self._streams.append(streams)
        return qnet

    def _extra_specs(self) -> tuple:
        return (tf.TensorSpec([4], tf.float32),)

    def params(self) -> StreamParams:
        ln = self.learner
        if ln.preset == "custom":
            return StreamParams(ln.reward_memory, ln.reward_weight, ln.punish_memory, ln.punish_weight)
        return draw_params(ln.preset, self.param_rng)

    def targets(self, r, s2, done, p):
        """Each stream's regression target, (batch, 2): column 0 for Q⁺, 1 for Q⁻.
        p = (m⁺, w⁺, m⁻, w⁻)."""
        c, ln = self.cfg, self.learner
        nxt = self.streams_target(s2, training=False)  # (batch, 2, actions)
        if ln.bootstrap == "combined":
            a_star = tf.argmax(nxt[:, 0] + nxt[:, 1], axis=1)
            v = tf.gather(nxt, tf.stack([a_star, a_star], 1), axis=2, batch_dims=2)
        else:
            v = tf.reduce_max(nxt, axis=2)  # each stream's own greedy value
        m = tf.clip_by_value(tf.stack([p[0], p[2]]), 0.0, 1.0)
        w = tf.stack([p[1], p[3]])
        rr = tf.stack([tf.maximum(r, 0.0), tf.minimum(r, 0.0)], 1)
        return (w * rr + c.gamma * (1.0 - done)[:, None] * v) / (2.0 - m)

    def _train_step(self, s, a, r, s2, done, p):
        c = self.cfg
        y = tf.stop_gradient(self.targets(r, s2, done, p))
        if self.learner.update == "sign":  # the stream of the reward's sign; both at r = 0
            mask = tf.cast(tf.stack([r >= 0.0, r <= 0.0], 1), tf.float32)
        else:
            mask = tf.ones_like(y)
        with tf.GradientTape() as tape:
            q = tf.gather(self.streams_online(s, training=True), tf.stack([a, a], 1),
                          axis=2, batch_dims=2)
            err = y - q
            if c.loss == "huber":
                per = tf.where(tf.abs(err) <= 1.0, 0.5 * err ** 2, tf.abs(err) - 0.5)
            else:
                per = err ** 2
            loss = tf.reduce_sum(per * mask) / tf.cast(tf.shape(r)[0], tf.float32)
        variables = self.online.model.trainable_variables
        self.opt.apply(tape.gradient(loss, variables))
        return loss

    def train(self, batch) -> float:
        s, a, r, s2, done = batch
        if self.cfg.clip_reward:
            r = np.clip(r, -1.0, 1.0)
        p = self.params()
        pv = np.array([p.reward_memory, p.reward_weight, p.punish_memory, p.punish_weight], np.float32)
        return float(self._train(tf.constant(s), tf.constant(a, tf.int32), tf.constant(r, tf.float32),
                                 tf.constant(s2), tf.constant(done, tf.float32), tf.constant(pv)))

    def export_qnet(self) -> QNet:
        """The standard Q-net with head W⁺ + W⁻, b⁺ + b⁻: the same function as Q⁺ + Q⁻."""
        qnet = build_qnet(self.qnet_cfg, self.spec.obs_shape, self.spec.n_actions)
        qnet.encoder.set_weights(self.online.encoder.get_weights())
        kernel, bias = self.online.head.get_layer("streams").get_weights()
        n_a = self.spec.n_actions
        k = kernel.reshape(kernel.shape[0], 2, n_a)
        qnet.head.get_layer("q").set_weights([k[:, 0] + k[:, 1], bias[:n_a] + bias[n_a:]])
        return qnet

    def write_outputs(self, out_dir: str) -> None:
        self.streams_online.save_weights(os.path.join(out_dir, "streams.weights.h5"))

    def save(self, d: str) -> None:
        super().save(d)
        with open(os.path.join(d, "split_q_rng.json"), "w") as f:
            json.dump(self.param_rng.bit_generator.state, f)

    def load(self, d: str) -> None:
        super().load(d)
        with open(os.path.join(d, "split_q_rng.json")) as f:
            self.param_rng.bit_generator.state = json.load(f)


def train_split_q(cfg: Config, spec: EnvSpec, workdir, ckpt, log=print, tb_dir=None):
    """Stage 1's loop (acting, replay, evaluation, exact-resume checkpoints) with Split-Q's agent."""
    return train_dqn(cfg, spec, workdir, ckpt, log=log, tb_dir=tb_dir, make_agent=SplitQAgent)
