"""Seeds derived from named parts: independent streams without arithmetic collisions."""
from __future__ import annotations

import hashlib


def derive_seed(*parts) -> int:
    """A 31-bit seed from any parts, e.g. derive_seed(seed, "episode", 7)."""
    h = hashlib.sha256(":".join(map(str, parts)).encode()).digest()
    return int.from_bytes(h[:4], "little") & 0x7FFFFFFF


def episode_seed(seed: int, episode: int) -> int:
    """The env seed of training episode `episode` (0-based): every episode is a function of
    its seed and its actions, so a resumed run rebuilds a half-played one exactly."""
    return derive_seed(seed, "train-episode", episode)
