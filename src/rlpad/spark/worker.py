"""The worker side of run_grid: the per-process artifact cache and one trial's run."""
from __future__ import annotations

import hashlib
import importlib
import json
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from typing import Any, TypeVar

T = TypeVar("T")


# ---- worker side ---------------------------------------------------------------------------
_WORKER_CACHE: dict[Hashable, Any] = {}
_TRIAL_FNS: dict[str, Callable[[dict, dict], dict]] = {}
_FAIL_MARK = "rlpad trial "


def ctx_key(ctx: Mapping[str, Any]) -> str:
    """A short stable hash of a JSON-able ctx: use it in worker_cache keys so artifacts of
    different runs or configs never mix inside one long-lived worker."""
    blob = json.dumps(ctx, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


# A long-lived worker (a kept local session: many runs in one process) holds the artifacts of
# this many runs at most; the least recently used run's entries go first.
MAX_CACHED_RUNS = 4


def _run_of(key: Hashable) -> Hashable:
    return key[0] if isinstance(key, tuple) and key else key


def worker_cache(key: Hashable, loader: Callable[[], T]) -> T:
    """Return the value cached under `key` in this Python process, calling `loader()` the
    first time. Reused Spark workers keep it between trials (a worker runs one task at a
    time, so no lock is needed). Key it by `ctx_key(ctx)` plus an artifact name: entries are
    dropped per run (their first key element), keeping the `MAX_CACHED_RUNS` last used."""
    run = _run_of(key)
    if key not in _WORKER_CACHE:  # not in an `except KeyError`: a loader's own error stays unchained
        runs = list(dict.fromkeys(_run_of(k) for k in _WORKER_CACHE))  # oldest first
        if run not in runs and len(runs) >= MAX_CACHED_RUNS:
            old = runs[0]
            for k in [k for k in _WORKER_CACHE if _run_of(k) == old]:
                del _WORKER_CACHE[k]
        _WORKER_CACHE[key] = loader()
    # most recently used last: re-insert this run's entries at the end
    for k in [k for k in _WORKER_CACHE if _run_of(k) == run]:
        _WORKER_CACHE[k] = _WORKER_CACHE.pop(k)
    return _WORKER_CACHE[key]


def clear_worker_cache() -> None:
    _WORKER_CACHE.clear()


def load_trial_fn(trial_fn: str) -> Callable[[dict, dict], dict]:
    """Import "package.module:function"."""
    if trial_fn not in _TRIAL_FNS:
        module, _, name = trial_fn.partition(":")
        fn = getattr(importlib.import_module(module), name)
        if not callable(fn):
            raise TypeError(f"trial function {trial_fn} is not callable")
        _TRIAL_FNS[trial_fn] = fn
    return _TRIAL_FNS[trial_fn]


def run_one(trial_fn: str, spec: dict, ctx: dict) -> str:
    """Run one trial and return its result as JSON (the worker side of run_grid; also
    usable in-process to reproduce a single trial)."""
    tid = spec["trial_id"]
    try:
        result = load_trial_fn(trial_fn)(spec, ctx)
        if not isinstance(result, dict):
            raise TypeError(f"returned {type(result).__name__}, not a dict")
        if result.setdefault("trial_id", tid) != tid:
            raise ValueError(f"returned trial_id {result['trial_id']!r}")
        try:
            return json.dumps(result, sort_keys=True)
        except (TypeError, ValueError) as e:
            raise TypeError(f"returned a result that is not JSON-able ({e}); convert numpy "
                            "values with .item() / .tolist()") from e
    except Exception as e:
        # The marker lets the driver name the trial in its error, out of Spark's long message.
        raise RuntimeError(f"{_FAIL_MARK}{json.dumps(tid)} failed: {type(e).__name__}: {e}") from e


def _run_partition(trial_fn: str, ctx_json: str, results: Any, rows: Iterable[str]) -> Iterator[str]:
    # Module-level (not a closure) so cloudpickle ships it by reference and the worker uses
    # this module's real globals: that is what makes worker_cache persist across tasks.
    for spec_json in rows:
        out = run_one(trial_fn, json.loads(spec_json), json.loads(ctx_json))
        results.add([out])  # reaches the driver when the task succeeds, once per partition
        yield out
