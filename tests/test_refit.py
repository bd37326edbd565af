"""The offline head refit on a tiny MDP whose Q-values are known in closed form."""
from __future__ import annotations

import numpy as np
import pytest

from rlpad.refit import RefitSettings, Transitions, refit_head


def _two_action_mdp(n: int = 512) -> Transitions:
    # One state, e = [1, 0.5]. Action 0 ends the episode with reward 1; action 1 gives 0 and
    # stays. With gamma 0.9: Q(s, 0) = 1, Q(s, 1) = 0.9 * max Q(s, .) = 0.9.
    e = np.tile(np.array([[1.0, 0.5]], np.float32), (n, 1))
    a = np.arange(n, dtype=np.int32) % 2
    return Transitions(e, a, (a == 0).astype(np.float32), e.copy(), (a == 0).astype(np.float32))


@pytest.mark.parametrize("ensemble", [1, 3])
def test_refit_recovers_known_q_values(ensemble):
    s = RefitSettings(steps=3000, batch_size=64, lr=1e-2, gamma=0.9, target_update=50, seed=3,
                      average_from=0.5, ensemble=ensemble)
    res = refit_head(_two_action_mdp(), 2, s)
    q = res.head(np.array([[1.0, 0.5]], np.float32)).numpy()[0]
    assert q == pytest.approx([1.0, 0.9], abs=0.05)
    assert res.td_loss[-1] < 0.01


def test_refit_is_fixed_by_its_seed():
    s = RefitSettings(steps=500, batch_size=32, lr=1e-2, gamma=0.9, target_update=50, seed=7,
                      ensemble=2)
    w1 = refit_head(_two_action_mdp(), 2, s).head.get_weights()
    w2 = refit_head(_two_action_mdp(), 2, s).head.get_weights()
    w3 = refit_head(_two_action_mdp(), 2, RefitSettings(**{**s.__dict__, "seed": 8})).head.get_weights()
    assert all(np.array_equal(x, y) for x, y in zip(w1, w2))
    assert not all(np.array_equal(x, y) for x, y in zip(w1, w3))


def test_refit_refuses_empty_data():
    empty = Transitions(np.zeros((0, 2), np.float32), np.zeros(0, np.int32), np.zeros(0, np.float32),
                        np.zeros((0, 2), np.float32), np.zeros(0, np.float32))
    with pytest.raises(ValueError, match="at least one transition"):
        refit_head(empty, 2, RefitSettings(10, 4, 1e-3, 0.9, 5, 0))


def test_refit_loop_is_traced_once_per_settings():
    """A Spark worker runs many trials: the loop must not be retraced per trial, whatever the
    data size or seed (tracing costs more than a third of a refit)."""
    from rlpad.refit import _refit_loop

    s = RefitSettings(steps=120, batch_size=16, lr=1e-2, gamma=0.9, target_update=25, seed=1,
                      average_from=0.5, ensemble=2)
    res = refit_head(_two_action_mdp(64), 2, s)
    loop = _refit_loop(2, 2, 2, 16, 120, 25, 2, True, 0.0)  # the settings' cache key
    traced = loop.experimental_get_tracing_count()
    refit_head(_two_action_mdp(300), 2, RefitSettings(**{**s.__dict__, "seed": 9}))
    assert loop.experimental_get_tracing_count() == traced == 1
    assert len(res.td_loss) == s.log_points  # the mean loss over each tenth of the steps


def _chain_mdp(n_states: int = 6, gamma: float = 0.9, seed: int = 0):
    """A deterministic MDP on one-hot embeddings with every (state, action) in the data:
    LSTD-Q is then tabular, and LSPI must find the optimal policy (value iteration's)."""
    rng = np.random.default_rng(seed)
    nxt = rng.integers(n_states, size=(n_states, 2))
    rew = rng.standard_normal((n_states, 2))
    term = rng.random((n_states, 2)) < 0.15
    q = np.zeros((n_states, 2))
    for _ in range(2000):  # value iteration: the optimal Q
        q = rew + gamma * (1 - term) * q.max(axis=1)[nxt]
    s, a = np.meshgrid(np.arange(n_states), [0, 1], indexing="ij")
    s, a = np.repeat(s.ravel(), 3), np.repeat(a.ravel(), 3)  # each pair three times
    eye = np.eye(n_states, dtype=np.float32)
    data = Transitions(eye[s], a.astype(np.int32), rew[s, a].astype(np.float32), eye[nxt[s, a]],
                       term[s, a].astype(np.float32))
    return data, q


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_lspi_finds_the_optimal_policy_of_a_tabular_mdp(seed):
    from rlpad.refit import LspiSettings, lspi_head

    data, q_star = _chain_mdp(seed=seed)
    res = lspi_head(data, 2, LspiSettings(gamma=0.9, ridge=1e-9, max_iters=50))
    q = res.head(np.eye(len(q_star), dtype=np.float32)).numpy()
    assert res.converged and len(res.td_loss) <= 50
    np.testing.assert_array_equal(q.argmax(axis=1), q_star.argmax(axis=1))
    # the bias column is redundant with one-hot states; the ridge picks the split, not Q
    np.testing.assert_allclose(q, q_star, atol=1e-4)
    assert res.td_loss[-1] < 1e-8  # Q* satisfies its own greedy Bellman equation


def test_lspi_is_a_function_of_the_data():
    from rlpad.refit import LspiSettings, lspi_head

    data, _ = _chain_mdp(seed=4)
    w1 = lspi_head(data, 2, LspiSettings(0.9)).head.get_weights()
    w2 = lspi_head(data, 2, LspiSettings(0.9)).head.get_weights()
    assert all(np.array_equal(x, y) for x, y in zip(w1, w2))
    shuffled = data.subset(np.random.default_rng(0).permutation(len(data)))
    w3 = lspi_head(shuffled, 2, LspiSettings(0.9)).head.get_weights()
    assert all(np.allclose(x, y, atol=1e-5) for x, y in zip(w1, w3))  # order does not matter


# ---- every refit method on tabular MDPs; the seed's refit step by hand ---------------------------
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fqi_finds_the_optimal_policy_of_a_tabular_mdp(seed):
    from rlpad.refit import FqiSettings, fqi_head

    data, q_star = _chain_mdp(seed=seed)
    res = fqi_head(data, 2, FqiSettings(gamma=0.9, ridge=1e-9, iters=400))
    q = res.head(np.eye(len(q_star), dtype=np.float32)).numpy()
    np.testing.assert_array_equal(q.argmax(axis=1), q_star.argmax(axis=1))
    np.testing.assert_allclose(q, q_star, atol=1e-3)  # 0.9^400: converged to float precision
    assert res.converged and res.td_loss[-1] < 1e-8


@pytest.mark.parametrize("seed", [0, 1])
def test_offline_dqn_finds_the_optimal_policy_of_a_tabular_mdp(seed):
    data, q_star = _chain_mdp(seed=seed)
    s = RefitSettings(steps=6000, batch_size=36, lr=3e-2, gamma=0.9, target_update=100, seed=5,
                      average_from=0.5, ensemble=1)
    res = refit_head(data, 2, s)
    q = res.head(np.eye(len(q_star), dtype=np.float32)).numpy()
    np.testing.assert_array_equal(q.argmax(axis=1), q_star.argmax(axis=1))
    np.testing.assert_allclose(q, q_star, atol=0.1)


def test_seed_refit_step_is_the_seeds_update_by_hand():
    """One update of the seed's refit against a hand computation: MSE on the taken action's
    output (Keras' mean over the batch and the outputs), targets from the same weights (no
    target net), gamma 0.95, Keras-2 RMSprop (rho 0.9, eps outside the root)."""
    from rlpad.refit import SeedRefitSettings, seed_refit_step

    s = SeedRefitSettings(steps=1, seed=0)
    theta = np.array([[0.5, -0.2], [0.1, 0.3], [0.0, 0.0]])  # dim 2 + bias row, 2 actions
    phi = np.array([[1.0, 2.0, 1.0], [0.0, 1.0, 1.0]])
    phi2 = np.array([[2.0, 0.0, 1.0], [1.0, 1.0, 1.0]])
    r, g, a = np.array([1.0, -1.0]), np.array([0.95, 0.0]), np.array([0, 1])
    # by hand: Q(s2) rows [1.0, -0.4] and [0.6, 0.1]: max 1.0 and 0.6
    y = np.array([1.0 + 0.95 * 1.0, -1.0 + 0.0])
    q = np.array([1.0 * 0.5 + 2.0 * 0.1, 1.0 * 0.3])  # Q(s1, a1) = 0.7, Q(s2, a2) = 0.3
    dq = np.zeros((2, 2))
    dq[0, 0] = 2 * (q[0] - y[0]) / 4
    dq[1, 1] = 2 * (q[1] - y[1]) / 4
    grad = phi.T @ dq
    v = 0.1 * grad ** 2
    want = theta - 2.5e-4 * grad / (np.sqrt(v) + 1e-7)
    got, v_got, loss = seed_refit_step(theta, np.zeros_like(theta), phi, phi2, r, g, a, s)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    np.testing.assert_allclose(v_got, v, rtol=1e-12)
    assert loss == pytest.approx(np.mean((q - y) ** 2))
    assert s.gamma == 0.95 and s.batch_size == 50 and s.lr == 2.5e-4


def test_seed_refit_is_fixed_by_its_seed():
    from rlpad.refit import SeedRefitSettings, seed_head

    data, _ = _chain_mdp(seed=3)
    w = [seed_head(data, 2, SeedRefitSettings(steps=300, seed=k)).head.get_weights()
         for k in (1, 1, 2)]
    assert all(np.array_equal(x, y) for x, y in zip(w[0], w[1]))
    assert not all(np.array_equal(x, y) for x, y in zip(w[0], w[2]))


def test_iql_reaches_its_known_solutions_on_a_tabular_mdp():
    """Expectile 0.5: V is the mean over the data's actions, so Q is the uniform behaviour
    policy's own Q (policy evaluation); an expectile near 1 with every action in the data
    approaches the in-sample max, i.e. Q* (value iteration)."""
    from rlpad.refit import IqlSettings, iql_head

    data, q_star = _chain_mdp(seed=1)
    n_s = len(q_star)
    rng = np.random.default_rng(1)  # the MDP of _chain_mdp(seed=1), rebuilt
    nxt, rew = rng.integers(n_s, size=(n_s, 2)), rng.standard_normal((n_s, 2))
    term = rng.random((n_s, 2)) < 0.15
    q_b = np.zeros((n_s, 2))
    for _ in range(2000):  # the uniform policy's Q
        q_b = rew + 0.9 * (1 - term) * q_b.mean(axis=1)[nxt]
    eye = np.eye(n_s, dtype=np.float32)
    sarsa = iql_head(data, 2, IqlSettings(0.9, expectile=0.5, ridge=1e-9, iters=400, irls=1))
    np.testing.assert_allclose(sarsa.head(eye).numpy(), q_b, atol=1e-3)
    near_max = iql_head(data, 2, IqlSettings(0.9, expectile=0.999, ridge=1e-9, iters=400, irls=8))
    q = near_max.head(eye).numpy()
    np.testing.assert_array_equal(q.argmax(axis=1), q_star.argmax(axis=1))
    np.testing.assert_allclose(q, q_star, atol=0.05)


def test_bc_reaches_the_maximum_likelihood_policy_on_tabular_states():
    """With one-hot states and a vanishing penalty the softmax policy's optimum is the data's own
    action frequencies in each state (the maximum-likelihood solution), whatever the rewards."""
    from rlpad.refit import BcSettings, bc_head

    rng = np.random.default_rng(3)
    n_s, n_a = 5, 3
    probs = rng.dirichlet(np.ones(n_a), size=n_s)
    counts = np.rint(probs * 40).astype(int) + 1  # every action seen in every state
    s = np.repeat(np.arange(n_s), counts.sum(1))
    a = np.concatenate([np.repeat(np.arange(n_a), c) for c in counts]).astype(np.int32)
    eye = np.eye(n_s, dtype=np.float32)
    data = Transitions(eye[s], a, rng.standard_normal(len(s)).astype(np.float32), eye[s],
                       np.zeros(len(s), np.float32))
    res = bc_head(data, n_a, BcSettings(ridge=1e-10))
    z = res.head(eye).numpy().astype(np.float64)
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    assert res.converged
    np.testing.assert_allclose(p, counts / counts.sum(1, keepdims=True), atol=2e-3)
    # a strong penalty pulls every state towards the marginal frequencies instead
    strong = bc_head(data, n_a, BcSettings(ridge=1e3)).head(eye).numpy()
    ps = np.exp(strong - strong.max(1, keepdims=True))
    ps /= ps.sum(1, keepdims=True)
    np.testing.assert_allclose(ps, np.tile(np.bincount(a) / len(a), (n_s, 1)), atol=2e-3)


def test_bc_imitates_a_linear_teacher_and_is_a_function_of_the_data():
    """Actions of a teacher linear in relu(e), with 10 % uniform noise as in the policy dataset:
    the cloned head agrees with the teacher on fresh states, and refits are identical."""
    from rlpad.refit import BcSettings, bc_head

    rng = np.random.default_rng(0)
    dim, n_a, n = 16, 3, 4000
    w = rng.standard_normal((dim, n_a))

    def states(k):
        return (rng.standard_normal((k, dim)) * 3).astype(np.float32)

    e = states(n)
    act = (np.maximum(e, 0) @ w).argmax(1)
    noisy = rng.random(n) < 0.1
    act[noisy] = rng.integers(n_a, size=noisy.sum())
    data = Transitions(e, act.astype(np.int32), np.zeros(n, np.float32), e, np.zeros(n, np.float32))
    h1 = bc_head(data, n_a, BcSettings(ridge=1e-4)).head
    fresh = states(2000)
    agree = (h1(fresh).numpy().argmax(1) == (np.maximum(fresh, 0) @ w).argmax(1)).mean()
    assert agree > 0.95
    h2 = bc_head(data, n_a, BcSettings(ridge=1e-4)).head
    assert all(np.array_equal(x, y) for x, y in zip(h1.get_weights(), h2.get_weights()))
