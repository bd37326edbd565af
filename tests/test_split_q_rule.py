"""Split-Q's tabular rule: the variant that is Q-learning, and how the authors' rule differs."""
from __future__ import annotations

import numpy as np
import pytest

from rlpad.learners.split_q_rule import (PRESETS, StreamParams, draw_params, q_learning_update,
                                         update)


def _mdp(rng):
    """4 states, 2 actions, random transitions with mixed-sign rewards; state 3 terminal."""
    nxt = rng.integers(0, 4, size=(4, 2))
    rew = rng.choice([-2.0, -0.5, 0.0, 1.0, 3.0], size=(4, 2))
    return nxt, rew


def _run(rule, steps=3000, seed=0):
    rng = np.random.default_rng(seed)
    nxt, rew = _mdp(np.random.default_rng(42))
    s = 0
    for _ in range(steps):
        a = int(rng.integers(2))
        s2 = int(nxt[s, a])
        # noisy rewards of both signs on the same (s, a): the two streams see different parts
        r = float(rew[s, a] + rng.choice([-1.0, 0.0, 1.0]))
        rule(s, a, r, s2, s2 == 3)
        s = 0 if s2 == 3 else s2


def test_combined_bootstrap_both_streams_is_q_learning():
    q = np.zeros((4, 2))
    qp, qn = np.zeros((4, 2)), np.zeros((4, 2))
    unit = StreamParams()
    _run(lambda *t: q_learning_update(q, *t, alpha=0.1, gamma=0.9))
    _run(lambda *t: update(qp, qn, *t, alpha=0.1, gamma=0.9, p=unit, bootstrap="combined",
                           update="both"))
    assert np.abs(q).max() > 0.5  # it learnt something
    np.testing.assert_allclose(qp + qn, q, atol=1e-9)
    assert (qp >= 0).all() and (qn <= 0).all()  # each stream holds its sign's part


def test_the_authors_rule_differs_from_q_learning():
    q = np.zeros((4, 2))
    _run(lambda *t: q_learning_update(q, *t, alpha=0.1, gamma=0.9))
    # own-stream bootstrap alone (both streams learn every step): by induction over the same
    # transitions, max Q⁺ + max Q⁻ >= max (Q⁺ + Q⁻) keeps the sum >= Q-learning's in every cell
    qp, qn = np.zeros((4, 2)), np.zeros((4, 2))
    _run(lambda *t: update(qp, qn, *t, alpha=0.1, gamma=0.9, p=StreamParams(), update="both"))
    assert (qp + qn >= q - 1e-9).all() and (qp + qn - q).max() > 0.05
    # the authors' full rule (sign-only updates too: a stream learns only from rewards of its
    # sign, so Q⁺ tracks E[r | r >= 0], not E[max(r, 0)]) moves further from Q-learning
    ap, an = np.zeros((4, 2)), np.zeros((4, 2))
    _run(lambda *t: update(ap, an, *t, alpha=0.1, gamma=0.9, p=StreamParams()))
    assert np.abs(ap + an - q).max() > np.abs(qp + qn - q).max()


def test_memory_below_one_shrinks_a_stream():
    qp, qn = np.zeros((1, 1)), np.zeros((1, 1))
    for _ in range(200):  # a bandit paying +1 and -1 in turn, terminal each time
        for r in (1.0, -1.0):
            update(qp, qn, 0, 0, r, 0, True, alpha=0.1, gamma=0.9,
                   p=StreamParams(reward_memory=0.5, punish_memory=1.0))
    # fixed points: Q⁺ = alpha w r / (1 - m + alpha) = 0.1 / 0.6; Q⁻ -> -1
    assert qp[0, 0] == pytest.approx(0.1 / 0.6, rel=1e-3)
    assert qn[0, 0] == pytest.approx(-1.0, rel=1e-3)


def test_presets_draw_around_their_means():
    rng = np.random.default_rng(0)
    draws = np.array([[*draw_params("bvFTD", rng).__dict__.values()] for _ in range(4000)])
    means = [m for m, _ in PRESETS["bvFTD"]]
    np.testing.assert_allclose(draws.mean(0), means, atol=0.5)
    assert draws[:, 1].std() == pytest.approx(10, rel=0.1)
    assert draw_params("SQL", rng) == StreamParams()
    with pytest.raises(ValueError, match="preset 'nope'"):
        draw_params("nope", rng)


def test_pair_reward_updates_both_streams_each_from_its_part():
    """A gambling card pays a gain and a loss at once: both streams learn (the authors' IGT)."""
    qp, qn = np.zeros((2, 4)), np.zeros((2, 4))
    p = StreamParams(0.5, 2.0, 0.8, 3.0)
    update(qp, qn, 0, 1, (100.0, -250.0), 1, True, alpha=0.5, gamma=0.95, p=p)
    assert qp[0, 1] == pytest.approx(0.5 * 2.0 * 100.0) and qn[0, 1] == pytest.approx(0.5 * 3.0 * -250.0)
    update(qp, qn, 0, 1, (100.0, 0.0), 1, True, alpha=0.5, gamma=0.95, p=p)
    assert qp[0, 1] == pytest.approx(0.5 * 100 + 0.5 * (200 - 100))
    assert qn[0, 1] == pytest.approx(0.8 * -375 + 0.5 * (0 + 375))


def test_igt_presets_shift_choices_as_the_authors_report():
    """On the Iowa Gambling Task (scheme 1, 500 trials), the authors' saved results
    (mentalRL IGT/IGT_results.py, 200 runs) rank plain Split-Q near the top, AD and ADHD a few
    points below it, and ADD (losses forgotten: m⁻ ~ 0.5) and bvFTD (gains weighted ~100x)
    far below, ADD near chance and bvFTD preferring the bad decks. Seeds 0 and 1, 100 runs each."""
    from rlpad.learners.split_q_igt import good_deck_share, simulate

    for seed in (0, 1):
        share = {p: good_deck_share(simulate(p, runs=100, trials=500, seed=seed))
                 for p in ("SQL", "ADD", "bvFTD", "AD", "ADHD")}
        assert share["SQL"] > 0.9
        assert share["SQL"] - share["ADD"] > 0.25 and 0.35 < share["ADD"] < 0.7
        assert share["bvFTD"] < 0.45 and share["bvFTD"] < share["ADD"]
        assert share["AD"] < share["SQL"] and share["ADHD"] < share["SQL"]
