"""Stage 1's learners, chosen by name in the profile (`[learner] kind`).

Each maps (cfg, spec, workdir, checkpointer, log, tb_dir) to a result with the agent's Q-net,
replay, learning curve and metrics, which stage 1 publishes the same way for every learner.
`dqn` and `double-dqn` share one flow (`rlpad.dqn`): they differ only in the bootstrap target;
`split-q` runs on the same loop with its own two-stream agent (`split_q.py`); `ppo` has its own
flow (`ppo.py`) and no Q-net, so stages 2-4 refuse its runs.
"""
from __future__ import annotations

from typing import Callable

from ..config import ConfigError
from ..config.sections import LEARNERS


def learner(kind: str) -> Callable:
    """The training function of a learner kind (TensorFlow loads here)."""
    if kind in ("dqn", "double-dqn"):
        from ..dqn import train_dqn
        return train_dqn
    if kind == "split-q":
        from .split_q import train_split_q
        return train_split_q
    if kind == "ppo":
        from .ppo import train_ppo
        return train_ppo
    raise ConfigError(f"key 'learner.kind': unknown learner {kind!r} (known: {', '.join(LEARNERS)})")


__all__ = ["LEARNERS", "learner"]
