"""Split-Q's update rule in tabular form (Lin, Cecchi, Bouneffouf, Reinen and Rish, "A Story of
Two Streams", AAMAS 2020, arXiv 1906.11286), as the authors' code does it (doerlbh/mentalRL,
`IGT/utils/rlagents.py`, algorithms SQL and the clinical presets): the deep learner's reference.

Two tables: Q⁺ learns from the reward's positive part, Q⁻ from its negative part,
    Q⁺(s,a) <- m⁺ Q⁺(s,a) + alpha (w⁺ r⁺ + gamma Q⁺(s', a⁺) - Q⁺(s,a))
    Q⁻(s,a) <- m⁻ Q⁻(s,a) + alpha (w⁻ r⁻ + gamma Q⁻(s', a⁻) - Q⁻(s,a))
with memories m (the decay of a stream's accumulated value) and reward weights w; the agent
acts greedily on Q⁺ + Q⁻. The authors' choices, kept under `bootstrap="stream"` and
`update="sign"`: each stream bootstraps on its own greedy action (a⁺ = argmax Q⁺(s')), and
on a scalar reward only the stream of its sign learns (both at r = 0). `bootstrap="combined"`
(a⁺ = a⁻ = argmax (Q⁺ + Q⁻)(s')) with `update="both"` is the variant whose sum, at unit
weights and memories, is exactly Q-learning's Q.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# The authors' presets (getBias in IGT/utils/rlagents.py): (mean, sd) of m⁺, w⁺, m⁻, w⁻, drawn
# afresh at every update. Names are the paper's: AD Alzheimer's disease, ADD addiction, ADHD,
# bvFTD behavioural-variant fronto-temporal dementia, CP chronic pain, PD Parkinson's disease,
# M "moderate"; SQL is plain Split-Q (no draws).
PRESETS: dict[str, tuple[tuple[float, float], ...]] = {
    "SQL": ((1, 0), (1, 0), (1, 0), (1, 0)),
    "ADD": ((1, .1), (1, .1), (.5, .1), (1, .1)),
    "ADHD": ((.2, .1), (1, .1), (.2, .1), (1, .1)),
    "AD": ((.1, .1), (1, .1), (.1, .1), (1, .1)),
    "CP": ((.5, .1), (.5, .1), (1, .1), (1, .1)),
    "bvFTD": ((.5, .1), (100, 10), (.5, .1), (1, .1)),
    "PD": ((.5, .1), (1, .1), (.5, .1), (100, 10)),
    "M": ((.5, .1), (1, .1), (.5, .1), (1, .1)),
}


@dataclass(frozen=True)
class StreamParams:
    reward_memory: float = 1.0
    reward_weight: float = 1.0
    punish_memory: float = 1.0
    punish_weight: float = 1.0


def draw_params(preset: str, rng: np.random.Generator) -> StreamParams:
    """One update's (m⁺, w⁺, m⁻, w⁻), drawn around a preset as the authors' code does."""
    try:
        spec = PRESETS[preset]
    except KeyError:
        raise ValueError(f"split-q preset {preset!r}: choose from {', '.join(PRESETS)}") from None
    return StreamParams(*(float(rng.normal(m, s)) if s else float(m) for m, s in spec))


def _greedy(q: np.ndarray) -> int:
    return int(np.argmax(q))  # ties: the first (the authors break ties at random)


def update(qp: np.ndarray, qn: np.ndarray, s: int, a: int, r: float | tuple[float, float], s2: int,
           terminal: bool, alpha: float, gamma: float, p: StreamParams, bootstrap: str = "stream",
           update: str = "sign") -> None:
    """One transition's update of the tables qp = Q⁺, qn = Q⁻ (shape (states, actions)), in place.
    r: a scalar reward, split by sign; or a (gain, loss) pair, as a gambling task's card pays
    both at once (the authors' IGT), when both streams learn, each from its part."""
    if bootstrap == "combined":
        ap = an = _greedy(qp[s2] + qn[s2])
    elif bootstrap == "stream":
        ap, an = _greedy(qp[s2]), _greedy(qn[s2])
    else:
        raise ValueError(f"bootstrap {bootstrap!r}: 'stream' or 'combined'")
    if update not in ("sign", "both"):
        raise ValueError(f"update {update!r}: 'sign' or 'both'")
    cont = 0.0 if terminal else gamma
    if isinstance(r, tuple):
        rp, rn = float(r[0]), float(r[1])
        update = "both"
    else:
        rp, rn = max(r, 0.0), min(r, 0.0)
    if update == "both" or r >= 0:
        qp[s, a] = p.reward_memory * qp[s, a] + alpha * (p.reward_weight * rp + cont * qp[s2, ap] - qp[s, a])
    if update == "both" or r <= 0:
        qn[s, a] = p.punish_memory * qn[s, a] + alpha * (p.punish_weight * rn + cont * qn[s2, an] - qn[s, a])


def q_learning_update(q: np.ndarray, s: int, a: int, r: float, s2: int, terminal: bool,
                      alpha: float, gamma: float) -> None:
    """Watkins' Q-learning, the rule Split-Q generalises."""
    cont = 0.0 if terminal else gamma
    q[s, a] += alpha * (r + cont * q[s2, _greedy(q[s2])] - q[s, a])
