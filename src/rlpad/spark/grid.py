"""The driver side of run_grid: the grid's tasks, results streamed back, errors named."""
from __future__ import annotations

import functools
import importlib.util
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import SparkClusterError, TrialError
from .session import _parse_or_none, session
from .settings import _TRIAL_FN_RE, SparkSettings
from .worker import _FAIL_MARK, _run_partition

log = logging.getLogger(__name__)


# ---- driver side ---------------------------------------------------------------------------
class _ResultsParam:
    """Accumulator of result JSON strings.

    Spark merges a successful result task's accumulator updates into the driver as soon as
    that task finishes (and exactly once, whatever the retries), while `collect` only returns
    when all tasks are done: polling this accumulator streams results as they complete.
    `toLocalIterator` would not do: it runs one job per partition, so trials would run
    one after another.
    """

    def zero(self, value: list[str]) -> list[str]:
        return []

    def addInPlace(self, a: list[str], b: list[str]) -> list[str]:
        a.extend(b)
        return a


@dataclass(frozen=True)
class GridProgress:
    done: int          # trials finished in this call
    total: int         # trials this call runs (skipped ones excluded)
    skipped: int       # trials already in `done`
    elapsed_s: float

    @property
    def rate(self) -> float:
        return self.done / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def eta_s(self) -> float | None:
        return (self.total - self.done) / self.rate if self.rate > 0 else None

    def __str__(self) -> str:
        eta = "?" if self.eta_s is None else f"{self.eta_s:.0f} s"
        skipped = f" (+{self.skipped} done before)" if self.skipped else ""
        return (f"trials {self.done}/{self.total}{skipped}, {self.rate:.3g} trials/s, "
                f"elapsed {self.elapsed_s:.0f} s, ETA {eta}")


def _check_specs(specs: Sequence[Mapping[str, Any]]) -> list[dict]:
    seen: set[str] = set()
    out = []
    for i, spec in enumerate(specs):
        tid = spec.get("trial_id") if isinstance(spec, Mapping) else None
        if not isinstance(tid, str) or not tid:
            raise ValueError(f"spec #{i} has no string 'trial_id': {spec!r}")
        if tid in seen:
            raise ValueError(f"trial_id {tid!r} appears twice in the grid")
        seen.add(tid)
        try:
            json.dumps(spec)
        except (TypeError, ValueError) as e:
            raise ValueError(f"spec {tid!r} is not JSON-able: {e}") from e
        out.append(dict(spec))
    return out


def _trial_error(e: BaseException, attempts: int) -> TrialError | None:
    """Turn Spark's job-failure text into a TrialError naming the trial, if it is one."""
    text = str(e)
    m = re.search(re.escape(_FAIL_MARK) + r'("(?:[^"\\]|\\.)*") failed: ([^\n]*)', text)
    if not m:
        return None
    tid = json.loads(m[1])
    # The trial's own traceback is the first one; what follows is run_one and pyspark.
    tb = ""
    i = text.find("Traceback (most recent call last)")
    if i >= 0:
        own = re.split(r"\n\s*\n|\n\tat ", text[i:])[0].splitlines()
        tb = "\n" + "\n".join(own[-30:])
    return TrialError(f"trial {tid!r} failed on all {attempts} attempt(s): {m[2]}{tb}",
                      trial_id=tid)


def _max_attempts(sc: Any) -> int:
    master = _parse_or_none(sc.master)
    if master is not None and master.kind == "local":
        return master.failures or 1  # local mode retries only with local[N,F]
    return int(sc.getConf().get("spark.task.maxFailures", "4"))


def run_grid(specs: Sequence[Mapping[str, Any]], trial_fn: str, ctx: Mapping[str, Any],
             settings: SparkSettings | None = None, *, spark: Any = None,
             done: Mapping[str, dict] | None = None,
             on_result: Callable[[dict], None] | None = None,
             on_progress: Callable[[GridProgress], None] | None = None,
             poll_s: float = 0.2) -> list[dict]:
    """Run `trial_fn(spec, ctx)` for every spec, one Spark task each; return all results
    (those in `done` included) sorted by trial_id.

    trial_fn: "package.module:function", imported on the workers.
    ctx: small JSON-able dict every trial receives (store URI, run id, config...).
    spark: an active SparkSession to use; otherwise one is started from `settings` for
        this call (and not started at all when nothing is left to run).
    done: trial_id -> result of trials finished earlier: not re-run, returned as they are.
    A spec's optional "cost" (relative expected run time) orders the tasks, longest first.
    on_result: called in this thread with each new result as its task finishes (persist it
        there); on_progress: called after it with a GridProgress.
    A trial failing on every attempt raises TrialError; results delivered before stay
    delivered, so a re-run with them in `done` picks up where this one stopped.
    """
    if not isinstance(trial_fn, str) or not _TRIAL_FN_RE.match(trial_fn):
        raise ValueError(f"trial_fn {trial_fn!r} must look like 'package.module:function'")
    module = trial_fn.partition(":")[0]
    try:
        found = importlib.util.find_spec(module)  # imports parent packages only, not TF
    except ModuleNotFoundError:
        found = None
    if found is None:
        raise ValueError(f"trial_fn {trial_fn!r}: module {module!r} is not importable")
    try:
        ctx_json = json.dumps(dict(ctx), sort_keys=True)
    except (TypeError, ValueError) as e:
        raise ValueError(f"ctx is not JSON-able: {e}") from e

    grid = _check_specs(specs)
    done = dict(done or {})
    finished = {s["trial_id"]: done[s["trial_id"]] for s in grid if s["trial_id"] in done}
    # Longest first (a spec may carry a relative "cost"): Spark starts tasks in partition
    # order, so the expensive trials do not end up as the grid's tail on one executor.
    todo = sorted((s for s in grid if s["trial_id"] not in finished),
                  key=lambda s: -float(s.get("cost", 0.0)))
    log.info("grid: %d trials, %d done before, %d to run", len(grid), len(finished), len(todo))
    if todo:
        if spark is not None:
            new = _run_on(spark, todo, trial_fn, ctx_json, len(finished), on_result,
                          on_progress, poll_s)
        else:
            with session(settings) as s:
                new = _run_on(s, todo, trial_fn, ctx_json, len(finished), on_result,
                              on_progress, poll_s)
        finished.update(new)
    return [finished[k] for k in sorted(finished)]


def _run_on(spark: Any, todo: list[dict], trial_fn: str, ctx_json: str, skipped: int,
            on_result: Callable[[dict], None] | None,
            on_progress: Callable[[GridProgress], None] | None,
            poll_s: float) -> dict[str, dict]:
    sc = spark.sparkContext
    acc = sc.accumulator([], _ResultsParam())
    rows = [json.dumps(s, sort_keys=True) for s in todo]
    # One partition per spec: each trial is its own task, scheduled and retried on its own.
    rdd = sc.parallelize(rows, numSlices=len(rows)).mapPartitions(
        functools.partial(_run_partition, trial_fn, ctx_json, acc))
    group = f"rlpad-grid-{uuid.uuid4().hex[:12]}"
    box: dict[str, Any] = {}

    def collect() -> None:
        # Job groups are per thread; this one lets the main thread cancel the job.
        sc.setJobGroup(group, f"rlpad: {len(rows)} trials of {trial_fn}", interruptOnCancel=True)
        try:
            box["out"] = rdd.collect()
        except BaseException as e:  # noqa: BLE001 - handed to the main thread
            box["err"] = e

    got: dict[str, dict] = {}
    wanted = {s["trial_id"] for s in todo}
    t0 = time.monotonic()

    def deliver(items: Iterable[str]) -> None:
        for item in items:
            result = json.loads(item)
            tid = result["trial_id"]
            if tid in got or tid not in wanted:
                continue
            got[tid] = result
            if on_result is not None:
                on_result(result)
            p = GridProgress(len(got), len(todo), skipped, time.monotonic() - t0)
            log.info("%s", p)
            if on_progress is not None:
                on_progress(p)

    worker = threading.Thread(target=collect, name=group, daemon=True)
    worker.start()
    seen = 0
    try:
        while worker.is_alive():
            worker.join(poll_s)
            streamed = acc.value  # grows in the accumulator server's thread
            n = len(streamed)
            deliver(streamed[seen:n])
            seen = n
    except BaseException:
        # on_result raised or Ctrl-C: stop the running trials rather than orphan them.
        sc.cancelJobGroup(group)
        worker.join(60)
        raise
    deliver(acc.value[seen:])
    acc.value.clear()  # the driver keeps every accumulator registered: free the strings
    if "err" in box:
        err = box["err"]
        trial = _trial_error(err, _max_attempts(sc))
        if trial is not None:
            raise trial from err
        if isinstance(err, Exception):
            # A lost worker or executor rather than a trial's own exception: keep the gist
            # (Spark's text runs to pages of JVM stack) and chain the full error.
            text = str(err)
            m = re.search(r"Job aborted[^\n]*", text)
            raise SparkClusterError(f"the Spark job failed: {(m[0] if m else text)[:2000]}") from err
        raise err
    deliver(box["out"])  # normally all delivered already; this is the authoritative copy
    missing = wanted - got.keys()
    if missing:
        raise RuntimeError(f"Spark returned no result for trials {sorted(missing)}")
    return got
