"""The C2ST judge's training loop: a 2-hidden-layer ReLU MLP fit by Adam on binary
cross-entropy, minibatches in a fixed order, early stopping on a validation split with the best
epoch's weights restored (Keras's `fit(validation_split=..., shuffle=False)` with
`EarlyStopping(restore_best_weights=True)`, which it replaced).

Why not `keras.Model.fit`: a judge is small (thousands of rows, two layers of 128), so `fit`'s
per-epoch machinery and a fresh trace for every new model cost ~3 s a call, and stage 3, the
trials' padding checks and the tests call it often. Here one epoch is one compiled call, and a
judge of the same shape reuses its traced functions and variables (re-initialised per call), so
a call on a few thousand rows costs ~0.1-0.2 s after the first.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

_JUDGES: dict[tuple[int, int, int], "_Judge"] = {}


@dataclass(frozen=True)
class JudgeSettings:
    hidden: int = 128
    epochs: int = 60
    patience: int = 6
    min_delta: float = 1e-3
    lr: float = 1e-3
    batch_size: int = 128
    validation_fraction: float = 0.2


class _Judge:
    """Variables and traced functions for one (input width, hidden, batch size)."""

    def __init__(self, width: int, hidden: int, batch_size: int):
        import tensorflow as tf

        shapes = [(width, hidden), (hidden,), (hidden, hidden), (hidden,), (hidden, 1), (1,)]
        self.params = [tf.Variable(tf.zeros(s), trainable=True) for s in shapes]
        self.m = [tf.Variable(tf.zeros(s), trainable=False) for s in shapes]
        self.v = [tf.Variable(tf.zeros(s), trainable=False) for s in shapes]
        self.t = tf.Variable(0.0, trainable=False)
        self.lr = tf.Variable(1e-3, trainable=False)
        self.shapes = shapes
        x_spec = tf.TensorSpec([None, width], tf.float32)
        y_spec = tf.TensorSpec([None], tf.float32)
        bs = int(batch_size)

        def logits(x):
            w1, b1, w2, b2, w3, b3 = self.params
            h = tf.nn.relu(x @ w1 + b1)
            h = tf.nn.relu(h @ w2 + b2)
            return (h @ w3 + b3)[:, 0]

        def loss_of(x, y):
            return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=y, logits=logits(x)))

        def epoch(x, y):
            n = tf.shape(x)[0]
            for i in tf.range(0, n, bs):  # the last batch may be short, as in fit
                xb, yb = x[i:i + bs], y[i:i + bs]
                with tf.GradientTape() as tape:
                    loss = loss_of(xb, yb)
                grads = tape.gradient(loss, self.params)
                self.t.assign_add(1.0)
                # Keras 3's Adam (beta 0.9 / 0.999, epsilon 1e-7)
                alpha = self.lr * tf.sqrt(1.0 - 0.999 ** self.t) / (1.0 - 0.9 ** self.t)
                for p, m, v, g in zip(self.params, self.m, self.v, grads):
                    m.assign_add((g - m) * 0.1)
                    v.assign_add((tf.square(g) - v) * 0.001)
                    p.assign_sub(alpha * m / (tf.sqrt(v) + 1e-7))
            return tf.constant(0)

        self.epoch = tf.function(epoch).get_concrete_function(x_spec, y_spec)
        self.loss = tf.function(loss_of).get_concrete_function(x_spec, y_spec)
        self.predict = tf.function(lambda x: logits(x) > 0.0).get_concrete_function(x_spec)

    def reset(self, seeds: list[int], lr: float) -> None:
        import keras

        w1, _, w2, _, w3, _ = self.shapes
        init = [keras.initializers.HeNormal(seeds[0])(w1), None,
                keras.initializers.HeNormal(seeds[1])(w2), None,
                keras.initializers.GlorotUniform(seeds[2])(w3), None]
        for p, m, v, value, shape in zip(self.params, self.m, self.v, init, self.shapes):
            p.assign(np.zeros(shape, np.float32) if value is None else value)
            m.assign(np.zeros(shape, np.float32))
            v.assign(np.zeros(shape, np.float32))
        self.t.assign(0.0)
        self.lr.assign(lr)

    def weights(self) -> list[np.ndarray]:
        return [p.numpy() for p in self.params]

    def set_weights(self, ws: list[np.ndarray]) -> None:
        for p, w in zip(self.params, ws):
            p.assign(w)


def fit_and_predict(z_train: np.ndarray, y_train: np.ndarray, z_test: np.ndarray,
                    seeds: list[int], settings: JudgeSettings = JudgeSettings()) -> np.ndarray:
    """Fit a fresh judge (weights from `seeds`) on the rows in their given order (the last
    `validation_fraction` of them held out for early stopping) and return its 0/1 predictions
    for `z_test`. One process trains one judge at a time (Spark workers run one task each)."""
    import tensorflow as tf

    s = settings
    key = (int(z_train.shape[1]), s.hidden, s.batch_size)
    if key not in _JUDGES:
        _JUDGES[key] = _Judge(*key)
    judge = _JUDGES[key]
    judge.reset(seeds, s.lr)
    n_fit = int(math.floor(len(z_train) * (1.0 - s.validation_fraction)))  # as fit's split
    if n_fit in (0, len(z_train)):
        raise ValueError(f"the judge needs rows to fit and to validate on: {len(z_train)} rows "
                         f"with validation_fraction {s.validation_fraction}")
    x = tf.constant(z_train[:n_fit], tf.float32)
    y = tf.constant(y_train[:n_fit], tf.float32)
    xv = tf.constant(z_train[n_fit:], tf.float32)
    yv = tf.constant(y_train[n_fit:], tf.float32)
    best, best_w, wait = np.inf, None, 0
    for ep in range(s.epochs):
        judge.epoch(x, y)
        current = float(judge.loss(xv, yv))
        if best_w is None:
            best_w = judge.weights()
        wait += 1
        if current < best - s.min_delta:
            best, best_w, wait = current, judge.weights(), 0
            continue
        if wait >= s.patience and ep > 0:
            break
    judge.set_weights(best_w)
    return judge.predict(tf.constant(z_test, tf.float32)).numpy().astype(np.float32)
