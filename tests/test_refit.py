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
