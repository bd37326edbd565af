"""TEST HELPER (tests/test_eval.py): the real stage-4 trial, made to fail on a task's first attempt.

Shipped to Spark workers with SparkContext.addPyFile, so it needs nothing from tests/ but itself.
`flaky_trial` runs rlpad.trials.run_trial and then, for specs marked "flaky", raises on attempt 0:
the failure comes after the work, as a crash between computing and reporting would. The result
carries the attempt number that produced it (tests strip it before comparing).
"""
from __future__ import annotations

from rlpad.trials import run_trial


def _attempt() -> int:
    from pyspark import TaskContext

    tc = TaskContext.get()
    return tc.attemptNumber() if tc is not None else 0


def flaky_trial(spec: dict, ctx: dict) -> dict:
    result = run_trial({k: v for k, v in spec.items() if k != "flaky"}, ctx)
    attempt = _attempt()
    if spec.get("flaky") and attempt == 0:
        raise RuntimeError(f"injected failure on the first attempt of {spec['trial_id']}")
    return {**result, "attempt": attempt}
