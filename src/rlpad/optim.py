"""The DQN learner's optimizers: gradient clipping and the update as one XLA-compiled step.

Keras 3's optimizers issue several TF ops per variable per step; on the Nature CNN's 1.7M
weights that was 2.4 ms of a 12 ms train step. Here the global-norm clip and the update of every
variable are one XLA cluster (0.7 ms), called from inside the train step's tf.function.
The formulas, stated because libraries differ:
- RMSprop: v = rho v + (1 - rho) g^2; w -= lr g / (sqrt(v) + eps), eps outside the root as in
  Keras 2 (the seed's rlcode DQN: RMSprop(lr=2.5e-4, epsilon=0.01), rho 0.9) and PyTorch;
  Keras 3 puts it inside, which with eps = 0.01 caps steps ten times lower.
- Adam: Keras' (Kingma & Ba 2015, Algorithm 1 with the bias correction folded into the step
  size, eps outside the root).
State (step counter, slots) is a list of variables, saved with the checkpoint as arrays.
"""
from __future__ import annotations

from typing import Sequence

import tensorflow as tf

RMSPROP_RHO = 0.9  # Keras 2's default, which the seed used
ADAM_BETAS = (0.9, 0.999)


class FusedOptimizer:
    def __init__(self, name: str, lr: float, eps: float, variables: Sequence[tf.Variable],
                 max_grad_norm: float = 0.0):
        if name not in ("adam", "rmsprop"):
            raise ValueError(f"unknown optimizer {name!r} (adam, rmsprop)")
        self.name, self.eps, self.max_grad_norm = name, float(eps), float(max_grad_norm)
        # a variable, so a schedule can change it without retracing the train step
        self.lr = tf.Variable(float(lr), dtype=tf.float32, trainable=False, name="lr")
        self.params = list(variables)
        self.iterations = tf.Variable(0, dtype=tf.int64, trainable=False, name="iterations")

        def slots(tag: str) -> list[tf.Variable]:
            return [tf.Variable(tf.zeros_like(v), trainable=False, name=f"{tag}_{i}")
                    for i, v in enumerate(self.params)]

        self.m = slots("m") if name == "adam" else []
        self.v = slots("v")
        self._update = tf.function(self._step, jit_compile=True)

    @property
    def variables(self) -> list[tf.Variable]:
        return [self.iterations, *self.m, *self.v]

    def apply(self, grads: Sequence[tf.Tensor]) -> None:
        """Clip to max_grad_norm (if set) and apply."""
        scale = tf.constant(1.0)
        if self.max_grad_norm > 0:  # the norm outside XLA: TF's reduction is multi-threaded
            norm = tf.linalg.global_norm(grads)
            scale = tf.minimum(1.0, self.max_grad_norm / tf.maximum(norm, 1e-12))
        self._update(list(grads), scale)

    def _step(self, grads, scale):
        grads = [g * scale for g in grads]  # fused into the update: no extra pass
        self.iterations.assign_add(1)
        if self.name == "rmsprop":
            for w, v, g in zip(self.params, self.v, grads):
                v.assign(RMSPROP_RHO * v + (1.0 - RMSPROP_RHO) * tf.square(g))
                w.assign_sub(self.lr * g / (tf.sqrt(v) + self.eps))
        else:
            b1, b2 = ADAM_BETAS
            t = tf.cast(self.iterations, tf.float32)
            step = self.lr * tf.sqrt(1.0 - tf.pow(b2, t)) / (1.0 - tf.pow(b1, t))
            for w, m, v, g in zip(self.params, self.m, self.v, grads):
                m.assign(m + (g - m) * (1.0 - b1))
                v.assign(v + (tf.square(g) - v) * (1.0 - b2))
                w.assign_sub(step * m / (tf.sqrt(v) + self.eps))
