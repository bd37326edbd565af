"""What every generator module shares: the error users act on, file formats, JSON helpers."""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Callable

import numpy as np

FORMAT = "rlpad-gan"
FORMAT_VERSION = 1
CKPT_MARKER = "gan_ckpt.json"  # written last: a checkpoint folder without it is not a checkpoint
CKPT_PREFIX = "ckpt-"
_SAMPLE_BATCH = 8192

ProgressFn = Callable[[int, int, dict], None]
CheckpointFn = Callable[[str, int], None]


class GanError(RuntimeError):
    """A problem with GAN inputs or state that a user can act on."""


def _jsonable(o: Any) -> Any:
    """JSON-safe copy: numpy scalars/arrays -> Python; non-finite floats -> None."""
    if isinstance(o, dict):
        return {str(k): _jsonable(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_jsonable(v) for v in o]
    if isinstance(o, np.ndarray):
        return _jsonable(o.tolist())
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (float, np.floating)):
        f = float(o)
        return f if math.isfinite(f) else None
    return o


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
