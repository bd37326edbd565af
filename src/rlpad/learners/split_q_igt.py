"""The Iowa Gambling Task as the Split-Q authors simulate it (doerlbh/mentalRL, IGT/), vectorised
over independent runs: where the paper's presets are checked against the directions it reports.

Four decks; a card pays a gain and, sometimes, a loss (scheme 1, after Fridberg et al. 2009):
A and B pay 100 with expected value -25 per card, C and D pay 50 with expected value +25.
Each trial is one draw from one state, so a stream's update is the tabular rule at a terminal
next state, Q <- m Q + alpha (w r - Q), with the authors' step alpha = 1 / N(a)^0.8, their
epsilon-greedy choice (0.05) on Q⁺ + Q⁻, ties broken at random, and the four parameters drawn
around the preset at every update (`split_q_rule.draw_params`, vectorised here).
"""
from __future__ import annotations

import numpy as np

from .split_q_rule import PRESETS

GAIN = np.array([100.0, 100.0, 50.0, 50.0])
# (loss, probability) per deck; otherwise no loss
LOSSES = (((-150, .1), (-200, .1), (-250, .1), (-300, .1), (-350, .1)),
          ((-1250, .1),),
          ((-25, .1), (-75, .1), (-50, .3)),
          ((-250, .1),))
GOOD_DECKS = (2, 3)  # C, D


def draw_loss(decks: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    u = rng.random(decks.shape)
    out = np.zeros(decks.shape)
    for d, table in enumerate(LOSSES):
        edge = 0.0
        for loss, prob in table:
            hit = (decks == d) & (u >= edge) & (u < edge + prob)
            out[hit] = loss
            edge += prob
    return out


def simulate(preset: str, runs: int = 200, trials: int = 500, epsilon: float = 0.05,
             seed: int = 0) -> np.ndarray:
    """(runs, trials) decks chosen by Split-Q agents with `preset`."""
    rng = np.random.default_rng(seed)
    qp, qn, visits = np.zeros((runs, 4)), np.zeros((runs, 4)), np.zeros((runs, 4))
    spec = PRESETS[preset]
    rows = np.arange(runs)
    chosen = np.zeros((runs, trials), np.int64)
    for t in range(trials):
        q = qp + qn
        best = q == q.max(1, keepdims=True)
        greedy = np.array([rng.choice(np.flatnonzero(b)) for b in best])
        explore = rng.random(runs) < epsilon if t else np.ones(runs, bool)  # the first is random
        deck = np.where(explore, rng.integers(0, 4, runs), greedy)
        gain, loss = GAIN[deck], draw_loss(deck, rng)
        visits[rows, deck] += 1
        alpha = 1.0 / visits[rows, deck] ** 0.8
        m_p, w_p, m_n, w_n = (rng.normal(m, s, runs) if s else np.full(runs, float(m)) for m, s in spec)
        qp[rows, deck] = m_p * qp[rows, deck] + alpha * (w_p * gain - qp[rows, deck])
        qn[rows, deck] = m_n * qn[rows, deck] + alpha * (w_n * loss - qn[rows, deck])
        chosen[:, t] = deck
    return chosen


def good_deck_share(chosen: np.ndarray) -> float:
    """The fraction of choices from the advantageous decks C and D (the authors' plots)."""
    return float(np.isin(chosen, GOOD_DECKS).mean())
