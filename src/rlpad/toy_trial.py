"""TEST FIXTURE ONLY: toy trial functions for tests/test_spark.py (not part of the pipeline).

They have the shape of rlpad.trials.run_trial(spec, ctx) -> dict but compute a few numbers
from the spec's seed with numpy. The "worker" field reports the Python process, how often
its worker_cache loader ran and the task attempt, so tests can check worker reuse and
retries; everything else depends only on spec and ctx.
"""
from __future__ import annotations

import os

import numpy as np

from rlpad.spark import ctx_key, worker_cache

_LOADS = 0   # how many times this process ran the loader
_CALLS = 0   # how many trials this process ran


def _load(ctx: dict) -> dict:
    global _LOADS
    _LOADS += 1
    # Stands in for loading a Keras head / HDF5 data / GAN: a deterministic "artifact".
    return {"offset": float(ctx.get("offset", 0.0))}


def _attempt() -> int:
    from pyspark import TaskContext
    tc = TaskContext.get()
    return tc.attemptNumber() if tc is not None else 0


def _partition() -> int:
    from pyspark import TaskContext
    tc = TaskContext.get()
    return tc.partitionId() if tc is not None else -1


def run_trial(spec: dict, ctx: dict) -> dict:
    global _CALLS
    _CALLS += 1
    art = worker_cache((ctx_key(ctx), "toy-artifact"), lambda: _load(ctx))
    rng = np.random.default_rng(int(spec["seed"]))
    scores = (rng.normal(size=int(spec.get("episodes", 5))) + art["offset"]).round(9)
    return {
        "trial_id": spec["trial_id"],
        "mode": spec.get("mode", "simple"),
        "scores": scores.tolist(),
        "mean": float(scores.mean()),
        "worker": {"pid": os.getpid(), "loads": _LOADS, "calls": _CALLS, "attempt": _attempt(),
                   "partition": _partition()},
    }


def flaky_trial(spec: dict, ctx: dict) -> dict:
    """Raises on a task's first attempt when spec["flaky"]; a retry gives run_trial's result."""
    if spec.get("flaky") and _attempt() == 0:
        raise RuntimeError(f"toy failure on first attempt of {spec['trial_id']}")
    return run_trial(spec, ctx)


def broken_trial(spec: dict, ctx: dict) -> dict:
    """Raises on every attempt when spec["broken"]."""
    if spec.get("broken"):
        raise ValueError(f"toy trial {spec['trial_id']} is broken")
    return run_trial(spec, ctx)
