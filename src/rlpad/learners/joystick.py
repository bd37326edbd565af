"""PPO's joystick head (rl-dash-days' MsPacman PPO): a point (x, y) of a 2-D Gaussian is the
stick's position; within `dead_zone` of the centre it is NOOP, otherwise the nearest of the
8 compass directions (sectors of 45 degrees centred on them; y points up)."""
from __future__ import annotations

import math

from ..config import ConfigError, EnvConfig

# counter-clockwise from east, as ALE names them
COMPASS = ("RIGHT", "UPRIGHT", "UP", "UPLEFT", "LEFT", "DOWNLEFT", "DOWN", "DOWNRIGHT")
DIRECTIONS = ("NOOP",) + COMPASS


def to_direction(x: float, y: float, dead_zone: float) -> str:
    if math.hypot(x, y) < dead_zone:
        return "NOOP"
    sector = int(math.floor((math.degrees(math.atan2(y, x)) + 22.5) % 360 / 45)) % 8
    return COMPASS[sector]


def joystick_table(env_cfg: EnvConfig, spec) -> dict[str, int]:
    """Direction name -> our action index, for a game whose actions are the 9 directions."""
    from ..envs import make_env

    env = make_env(env_cfg)
    try:
        names = getattr(env.unwrapped, "get_action_meanings", lambda: [])()
    finally:
        env.close()
    ours = {names[a]: i for i, a in enumerate(spec.action_ids)} if names else {}
    missing = [d for d in DIRECTIONS if d not in ours]
    if missing:
        raise ConfigError(f"key 'ppo.head' = 'joystick' needs a game whose actions are NOOP and the 8 "
                          f"directions (MsPacman); {env_cfg.id} lacks {', '.join(missing)}: use "
                          "ppo.head = \"discrete\"")
    return {d: ours[d] for d in DIRECTIONS}
