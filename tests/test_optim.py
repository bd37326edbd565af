"""The fused DQN optimizers against reference formulas: Keras' Adam, Keras 2's RMSprop."""
import numpy as np
import pytest
import tensorflow as tf
import keras

from rlpad.optim import RMSPROP_RHO, FusedOptimizer

SHAPES = [(3, 4), (4,), (2, 2, 3)]


def _grads(rng, scale=1.0):
    return [tf.constant(scale * rng.standard_normal(s).astype(np.float32)) for s in SHAPES]


def test_adam_matches_keras_adam():
    rng = np.random.default_rng(0)
    init = [rng.standard_normal(s).astype(np.float32) for s in SHAPES]
    ours = [tf.Variable(w) for w in init]
    ref = [tf.Variable(w) for w in init]
    opt = FusedOptimizer("adam", 1e-2, 1e-7, ours)
    kopt = keras.optimizers.Adam(learning_rate=1e-2, epsilon=1e-7)
    for _ in range(25):
        g = _grads(rng)
        opt.apply(g)
        kopt.apply_gradients(zip(g, ref))
    for a, b in zip(ours, ref):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)
    assert int(opt.iterations.numpy()) == 25


def test_rmsprop_is_keras2s_with_eps_outside_the_root():
    rng = np.random.default_rng(1)
    init = [rng.standard_normal(s).astype(np.float32) for s in SHAPES]
    ours = [tf.Variable(w) for w in init]
    lr, eps = 2.5e-4, 0.01
    opt = FusedOptimizer("rmsprop", lr, eps, ours)
    w = [x.astype(np.float64) for x in init]
    v = [np.zeros_like(x) for x in w]
    for _ in range(20):
        g = _grads(rng, scale=1e-3)  # small gradients: where eps' place matters most
        opt.apply(g)
        for i, gi in enumerate(g):
            gi = gi.numpy().astype(np.float64)
            v[i] = RMSPROP_RHO * v[i] + (1 - RMSPROP_RHO) * gi ** 2
            w[i] -= lr * gi / (np.sqrt(v[i]) + eps)
    for a, b in zip(ours, w):
        np.testing.assert_allclose(a.numpy(), b, rtol=1e-5, atol=1e-7)
    # Keras 3's RMSprop puts eps inside the root: a visibly different step here
    k3 = [tf.Variable(x) for x in init]
    keras.optimizers.RMSprop(lr, rho=RMSPROP_RHO, epsilon=eps).apply_gradients(zip(_grads(rng, 1e-3), k3))
    assert not np.allclose(k3[0].numpy() - init[0], ours[0].numpy() - init[0], rtol=0.1)


@pytest.mark.parametrize("name", ["adam", "rmsprop"])
def test_clipping_equals_clip_by_global_norm(name):
    rng = np.random.default_rng(2)
    init = [rng.standard_normal(s).astype(np.float32) for s in SHAPES]
    a = [tf.Variable(w) for w in init]
    b = [tf.Variable(w) for w in init]
    clipped = FusedOptimizer(name, 1e-2, 1e-7, a, max_grad_norm=0.5)
    plain = FusedOptimizer(name, 1e-2, 1e-7, b)
    for _ in range(5):
        g = _grads(rng, scale=3.0)  # norm ~ 13 > 0.5: clipping acts
        clipped.apply(g)
        plain.apply(tf.clip_by_global_norm(g, 0.5)[0])
    for x, y in zip(a, b):
        np.testing.assert_allclose(x.numpy(), y.numpy(), rtol=1e-5, atol=1e-6)


def test_unknown_optimizer_is_refused():
    with pytest.raises(ValueError, match="sgd"):
        FusedOptimizer("sgd", 1e-3, 1e-7, [tf.Variable(1.0)])


@pytest.mark.parametrize("name", ["adam", "rmsprop"])
def test_lr_is_a_variable_a_schedule_changes_without_retracing(name):
    """The DQN's lr schedule assigns opt.lr between steps: the compiled update must read it."""
    rng = np.random.default_rng(3)
    w = [tf.Variable(rng.standard_normal(s).astype(np.float32)) for s in SHAPES]
    opt = FusedOptimizer(name, 1e-2, 1e-7, w)
    opt.apply(_grads(rng))
    before = [v.numpy().copy() for v in w]
    opt.lr.assign(0.0)
    opt.apply(_grads(rng))
    for a, b in zip(w, before):
        np.testing.assert_array_equal(a.numpy(), b)  # lr 0: no move
    opt.lr.assign(1e-2)
    opt.apply(_grads(rng))
    assert any(not np.array_equal(a.numpy(), b) for a, b in zip(w, before))
    assert opt._update.experimental_get_tracing_count() == 1
