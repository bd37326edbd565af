"""Stage 4 distribution layer: a grid of independent trials -> one Spark task each -> results.

Generic over the trial function: `run_grid(specs, "module:function", ctx, settings)` ships each
spec (a JSON-able dict with a unique "trial_id") to a Python worker, which imports the function
by name and calls `fn(spec, ctx)`; the function returns a JSON-able dict. Python workers are
reused (`spark.python.worker.reuse`), so a trial function that loads its artifacts through
`worker_cache(key, loader)` loads them once per worker process, not once per trial.

Specs, ctx and results cross the Python/JVM boundary as JSON strings, so what the driver gets
back is exactly what `json.loads(json.dumps(result))` gives: no pickled numpy scalars, no
tuples-that-were-lists surprises. Results stream back as tasks finish (through an
accumulator, see `_ResultsParam`) so a caller can persist each trial at once and a killed
stage resumes with `done=` skipping the finished ones.

Masters: local[N], local[N,F] (F = attempts per task), spark://HOST:PORT (standalone; see
scripts/spark-cluster.sh) and k8s://https://HOST[:PORT] (through `spark_submit_command`).
"""
from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.util
import json
import logging
import os
import re
import shutil
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

MASTER_SETTING = "RLPAD_SPARK_MASTER"
_LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}
_LOCAL_RE = re.compile(r"^local(?:\[(?P<threads>\*|[1-9][0-9]*)(?:,(?P<failures>[1-9][0-9]*))?\])?$")
_HOSTPORT_RE = re.compile(r"^(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)"
                          r":(?P<port>[0-9]{1,5})$")
_K8S_RE = re.compile(r"^k8s://(?:(?P<scheme>https?)://)?(?P<host>\[[0-9A-Fa-f:.]+\]|"
                     r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)(?::(?P<port>[0-9]{1,5}))?/?$")
_MEMORY_RE = re.compile(r"^[1-9][0-9]*[kmgtp]?b?$", re.IGNORECASE)
_TRIAL_FN_RE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
_MASTER_FORMS = ("local, local[*], local[N], local[N,F] (F = attempts per task), "
                 "spark://HOST:PORT[,HOST:PORT...] or k8s://https://HOST[:PORT]")
# Spark's own marker for "launched by spark-submit": the JVM and its conf already exist.
_SUBMITTED_ENV = "PYSPARK_GATEWAY_PORT"


class SparkSettingsError(ValueError):
    """A malformed Spark setting; the message names the setting."""


class SparkClusterError(RuntimeError):
    """The cluster cannot be reached or gives no executors."""


class TrialError(RuntimeError):
    """A trial raised on every attempt Spark allowed; `trial_id` names it."""

    def __init__(self, message: str, trial_id: str | None = None):
        super().__init__(message)
        self.trial_id = trial_id


# ---- settings ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Master:
    """A parsed master URL."""
    url: str
    kind: str                                   # "local" | "spark" | "k8s"
    threads: str = ""                           # local: "*" or N
    failures: int | None = None                 # local[N,F]: F
    endpoints: tuple[tuple[str, int], ...] = ()  # spark:// (several for HA) or the k8s API server

    @property
    def is_cluster(self) -> bool:
        return self.kind != "local"

    @property
    def is_loopback(self) -> bool:
        return self.kind == "local" or (
            self.kind == "spark" and all(h in _LOOPBACK for h, _ in self.endpoints))


def parse_master(url: str) -> Master:
    """Parse a master URL or raise SparkSettingsError naming RLPAD_SPARK_MASTER."""
    def bad(why: str) -> SparkSettingsError:
        return SparkSettingsError(
            f"{MASTER_SETTING}={url!r} is not a usable Spark master URL ({why}); "
            f"expected one of: {_MASTER_FORMS}")

    if not isinstance(url, str) or not url.strip():
        raise bad("empty")
    url = url.strip()
    if url.startswith("local"):
        m = _LOCAL_RE.match(url)
        if not m:
            raise bad("local needs a thread count >= 1 or '*', and optionally ',F' with F >= 1")
        return Master(url, "local", m["threads"] or "1",
                      int(m["failures"]) if m["failures"] else None)
    if url.startswith("spark://"):
        rest = url[len("spark://"):]
        endpoints = []
        for part in rest.split(","):
            m = _HOSTPORT_RE.match(part)
            if not m:
                raise bad(f"{part!r} is not HOST:PORT")
            port = int(m["port"])
            if not 0 < port < 65536:
                raise bad(f"port {port} is out of range")
            endpoints.append((m["host"].strip("[]"), port))
        return Master(url, "spark", endpoints=tuple(endpoints))
    if url.startswith("k8s://"):
        m = _K8S_RE.match(url)
        if not m:
            raise bad("k8s needs the API server, e.g. k8s://https://10.0.0.1:6443")
        port = int(m["port"]) if m["port"] else (80 if m["scheme"] == "http" else 443)
        if not 0 < port < 65536:
            raise bad(f"port {port} is out of range")
        return Master(url, "k8s", endpoints=((m["host"].strip("[]"), port),))
    raise bad("unknown scheme")


@dataclass(frozen=True)
class SparkSettings:
    """Where and how stage 4 runs. Field names map to RLPAD_SPARK_<FIELD> in config.sh."""
    master: str = "local[*]"
    executors: int = 2                 # cluster modes: executor count
    executor_cores: int = 1            # task slots per executor (one trial per slot)
    executor_memory: str = "2g"
    driver_memory: str = ""            # "" = Spark's default; applies when the JVM starts
    max_failures: int = 4              # spark.task.maxFailures for cluster masters (local: local[N,F])
    image: str = ""                    # k8s: container image holding rlpad and its venv
    namespace: str = "default"         # k8s
    service_account: str = "spark"     # k8s: driver pod's service account (needs pod create/delete)
    k8s_entry: str = "local:///opt/rlpad/src/rlpad/spark.py"  # k8s: this file's path in the image
    python: str = ""                   # worker/driver python; "" = sys.executable ("python3" on k8s)
    app_name: str = "rlpad"
    ui: bool = False                   # Spark web UI (off: faster start, no port clashes)
    connect_timeout_s: float = 5.0     # TCP probe of a spark:// master before starting
    executor_wait_s: float = 120.0     # cluster masters: wait this long for a first executor
    conf: dict[str, str] = field(default_factory=dict)  # extra spark.* settings, applied last

    def validate(self) -> Master:
        """Check every field; return the parsed master. Errors name the setting."""
        master = parse_master(self.master)

        def need(ok: bool, name: str, what: str) -> None:
            if not ok:
                raise SparkSettingsError(
                    f"RLPAD_SPARK_{name.upper()}={getattr(self, name)!r}: {what}")

        for name in ("executors", "executor_cores", "max_failures"):
            v = getattr(self, name)
            need(isinstance(v, int) and not isinstance(v, bool) and v >= 1, name,
                 "must be an integer >= 1")
        need(bool(_MEMORY_RE.match(str(self.executor_memory))), "executor_memory",
             "must be a JVM memory size like 512m or 2g")
        need(self.driver_memory == "" or bool(_MEMORY_RE.match(str(self.driver_memory))),
             "driver_memory", "must be empty or a JVM memory size like 512m or 2g")
        need(bool(self.app_name.strip()), "app_name", "must not be empty")
        need(self.connect_timeout_s > 0, "connect_timeout_s", "must be > 0")
        need(self.executor_wait_s > 0, "executor_wait_s", "must be > 0")
        for k in self.conf:
            need(isinstance(k, str) and k.startswith("spark."), "conf",
                 f"key {k!r} is not a spark.* setting")
        if master.kind == "k8s":
            need(bool(self.image), "image", f"is required for a k8s master ({self.master})")
            need(bool(re.match(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", self.namespace)), "namespace",
                 "must be a Kubernetes namespace name")
            need(self.k8s_entry.startswith(("local://", "/", "http://", "https://", "s3a://",
                                             "gs://")), "k8s_entry",
                 "must be a path in the image (local:///...) or a URL")
        return master

    def python_exec(self, master: Master) -> str:
        return self.python or ("python3" if master.kind == "k8s" else sys.executable)


def spark_conf(settings: SparkSettings, master: Master | None = None) -> dict[str, str]:
    """The spark.* settings shared by `session` and `spark_submit_command`."""
    master = master or settings.validate()
    conf = {
        # One Python worker per task slot, kept alive between trials: the trial function's
        # imports (TF ~3 s) and worker_cache entries survive from one trial to the next.
        "spark.python.worker.reuse": "true",
        "spark.ui.enabled": str(settings.ui).lower(),
        # run_grid reports trials done/total, rate and ETA itself; Spark's bar only garbles it.
        "spark.ui.showConsoleProgress": "false",
        "spark.app.name": settings.app_name,
        # WARN from the SparkContext's start on (under spark-submit the default is INFO).
        "spark.log.level": "WARN",
    }
    if settings.driver_memory:
        conf["spark.driver.memory"] = settings.driver_memory
    if master.is_cluster:
        conf["spark.task.maxFailures"] = str(settings.max_failures)
        conf["spark.executor.cores"] = str(settings.executor_cores)
        conf["spark.executor.memory"] = settings.executor_memory
        if master.kind == "spark":
            # Standalone has no executor count; capping the app's cores gives the same.
            conf["spark.cores.max"] = str(settings.executors * settings.executor_cores)
        else:
            conf["spark.executor.instances"] = str(settings.executors)
    if master.is_loopback:
        # Executors on a loopback cluster must reach the driver on 127.0.0.1, even if the
        # machine's hostname resolves elsewhere (or nowhere).
        conf["spark.driver.host"] = "127.0.0.1"
        conf["spark.driver.bindAddress"] = "127.0.0.1"
    if master.kind == "k8s":
        conf.update({
            "spark.kubernetes.container.image": settings.image,
            "spark.kubernetes.namespace": settings.namespace,
            "spark.kubernetes.authenticate.driver.serviceAccountName": settings.service_account,
        })
    conf.update({str(k): str(v) for k, v in settings.conf.items()})
    return conf


# ---- session -------------------------------------------------------------------------------
def probe_master(master: Master, timeout_s: float = 5.0) -> None:
    """Fail fast if no endpoint of a spark:// master accepts TCP connections.

    Without this, Spark retries registration for ~60 s and then only logs "All masters are
    unresponsive"; a typo in the URL should cost seconds, not a minute of silence.
    """
    errors = []
    for host, port in master.endpoints:
        try:
            with socket.create_connection((host, port), timeout=timeout_s):
                return
        except OSError as e:
            errors.append(f"{host}:{port}: {e.strerror or e}")
    raise SparkClusterError(
        f"Spark master {master.url} is not reachable ({'; '.join(errors)}); start one with "
        f"`scripts/spark-cluster.sh start` or fix {MASTER_SETTING}")


def _executor_count(spark: Any) -> int:
    # getExecutorMemoryStatus lists the driver too.
    return max(0, spark.sparkContext._jsc.sc().getExecutorMemoryStatus().size() - 1)


def _wait_for_executors(spark: Any, master_url: str, settings: SparkSettings) -> int:
    """Wait until at least one executor registered; a job on a cluster without executors
    would otherwise wait forever with only a log warning."""
    deadline = time.monotonic() + settings.executor_wait_s
    while (n := _executor_count(spark)) < 1:
        if spark.sparkContext._jsc.sc().isStopped():
            # Spark stops the context itself when the master rejects or loses the app.
            raise SparkClusterError(f"Spark stopped the application on {master_url} before any "
                                    "executor registered (see the log above)")
        if time.monotonic() > deadline:
            raise SparkClusterError(
                f"no executor registered with {master_url} within {settings.executor_wait_s:g} s: "
                f"is a worker running (`scripts/spark-cluster.sh status`), and does it offer "
                f"{settings.executor_cores} core(s) and {settings.executor_memory} of memory "
                f"(RLPAD_SPARK_EXECUTOR_CORES / RLPAD_SPARK_EXECUTOR_MEMORY)?")
        time.sleep(0.25)
    return n


@contextmanager
def session(settings: SparkSettings | None = None) -> Iterator[Any]:
    """A SparkSession for `settings`, stopped on exit.

    Under spark-submit (see `spark_submit_command`) the submitted conf is used as it is and
    `settings.master` is ignored. Only one SparkSession may be active per process.
    """
    from pyspark import SparkContext
    from pyspark.sql import SparkSession

    settings = settings or SparkSettings()
    submitted = _SUBMITTED_ENV in os.environ
    # Under spark-submit the master and its settings came with the submission.
    master = parse_master("local") if submitted else settings.validate()
    if SparkContext._active_spark_context is not None:
        raise SparkClusterError("a SparkSession is already active in this process; stop it "
                                "first (Spark allows one per process)")
    if (SparkContext._gateway is None and not submitted and not shutil.which("java")
            and not os.environ.get("JAVA_HOME")):
        raise SparkClusterError("Spark needs Java, and no `java` is on PATH: install a JRE 17: "
                                "apt-get install -y openjdk-17-jre-headless")
    builder = SparkSession.builder
    if submitted:
        log.info("running under spark-submit: using its master and conf")
    else:
        if master.kind == "spark":
            probe_master(master, settings.connect_timeout_s)
        # Spark reads these two from the environment: the interface its services bind to
        # (only read when this process first starts the JVM) and the workers' interpreter
        # (read by every new SparkContext), so workers import the same venv as the driver.
        if master.is_loopback:
            os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"
        os.environ["PYSPARK_PYTHON"] = settings.python_exec(master)
        builder = builder.master(master.url)
        for k, v in spark_conf(settings, master).items():
            builder = builder.config(k, v)
    # py4j logs every closed connection at INFO (one per finished grid thread).
    logging.getLogger("py4j").setLevel(logging.WARNING)
    t0 = time.monotonic()
    spark = builder.getOrCreate()
    try:
        sc = spark.sparkContext
        sc.setLogLevel("WARN")
        actual = parse_master(sc.master) if not submitted else _parse_or_none(sc.master)
        if actual is not None and actual.is_cluster:
            n = _wait_for_executors(spark, sc.master, settings)
            log.info("Spark %s up in %.1f s with %d executor(s)", sc.master,
                     time.monotonic() - t0, n)
        else:
            log.info("Spark %s up in %.1f s", sc.master, time.monotonic() - t0)
        yield spark
    finally:
        spark.stop()


def _parse_or_none(url: str) -> Master | None:
    try:
        return parse_master(url)
    except SparkSettingsError:
        return None


# ---- worker side ---------------------------------------------------------------------------
_WORKER_CACHE: dict[Hashable, Any] = {}
_TRIAL_FNS: dict[str, Callable[[dict, dict], dict]] = {}
_FAIL_MARK = "rlpad trial "


def ctx_key(ctx: Mapping[str, Any]) -> str:
    """A short stable hash of a JSON-able ctx: use it in worker_cache keys so artifacts of
    different runs or configs never mix inside one long-lived worker."""
    blob = json.dumps(ctx, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def worker_cache(key: Hashable, loader: Callable[[], T]) -> T:
    """Return the value cached under `key` in this Python process, calling `loader()` the
    first time. Reused Spark workers keep it between trials (a worker runs one task at a
    time, so no lock is needed). Key it by `ctx_key(ctx)` plus an artifact name."""
    try:
        return _WORKER_CACHE[key]
    except KeyError:
        value = _WORKER_CACHE[key] = loader()
        return value


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


# ---- cluster runs --------------------------------------------------------------------------
def spark_home() -> str:
    """The pyspark package folder: the wheel ships bin/spark-submit and bin/spark-class."""
    import pyspark
    return os.path.dirname(pyspark.__file__)


def spark_submit_command(settings: SparkSettings, entry_args: Sequence[str], *,
                         spark_home_dir: str | None = None) -> list[str]:
    """A spark-submit command line that runs `rlpad <entry_args...>` (e.g. ["eval", ...]) as
    a Spark application: spark:// and local in client mode (the driver runs here), k8s in
    cluster mode (the driver runs in a pod from settings.image). The entry file is this
    module, whose __main__ hands over to rlpad.cli.main."""
    master = settings.validate()
    home = spark_home_dir or spark_home()
    python = settings.python_exec(master)
    k8s = master.kind == "k8s"
    conf = spark_conf(settings, master)
    conf["spark.pyspark.python"] = python
    conf["spark.pyspark.driver.python"] = python
    conf.pop("spark.app.name")  # given as --name below (k8s also derives pod names from it)
    cmd = [os.path.join(home, "bin", "spark-submit"),
           "--master", master.url,
           "--deploy-mode", "cluster" if k8s else "client",
           "--name", settings.app_name]
    for k in sorted(conf):
        cmd += ["--conf", f"{k}={conf[k]}"]
    cmd.append(settings.k8s_entry if k8s else str(Path(__file__).resolve()))
    cmd += [str(a) for a in entry_args]
    return cmd


def k8s_role_command(role: str, args: Sequence[str], env: Mapping[str, str]) -> list[str]:
    """What a driver or executor pod runs. Spark on Kubernetes starts its pods from the
    image with `driver ...` or `executor` as arguments and expects the image's entrypoint
    to know these roles; the pyspark wheel ships no such entrypoint, so `rlpad` plays it."""
    home = spark_home()
    if role == "driver":  # the driver pod runs the application in client mode
        bind = env.get("SPARK_DRIVER_BIND_ADDRESS", "0.0.0.0")
        return [os.path.join(home, "bin", "spark-submit"), "--deploy-mode", "client",
                "--conf", f"spark.driver.bindAddress={bind}", *args]
    if role == "executor":  # as Spark's own image entrypoint (resource-managers/kubernetes)
        need = ("SPARK_DRIVER_URL", "SPARK_EXECUTOR_ID", "SPARK_EXECUTOR_CORES",
                "SPARK_APPLICATION_ID", "SPARK_EXECUTOR_POD_IP", "SPARK_EXECUTOR_MEMORY")
        missing = [k for k in need if not env.get(k)]
        if missing:
            raise SparkClusterError(f"executor pod lacks {', '.join(missing)}: it must be started "
                                    "by Spark on Kubernetes")
        # The driver passes the executor's JVM options (spark.executor.extraJavaOptions, the
        # driver port, auth settings) as SPARK_JAVA_OPT_0, _1, ... in order.
        opts = sorted((int(k.rsplit("_", 1)[1]), v) for k, v in env.items()
                      if re.fullmatch(r"SPARK_JAVA_OPT_\d+", k))
        java = os.path.join(env["JAVA_HOME"], "bin", "java") if env.get("JAVA_HOME") else "java"
        classpath = ":".join(p for p in (env.get("SPARK_CLASSPATH"), os.path.join(home, "jars", "*"),
                                         env.get("SPARK_DIST_CLASSPATH")) if p)
        mem = env["SPARK_EXECUTOR_MEMORY"]
        return [java, *(v for _, v in opts), f"-Xms{mem}", f"-Xmx{mem}", "-cp", classpath,
                "org.apache.spark.scheduler.cluster.k8s.KubernetesExecutorBackend",
                "--driver-url", env["SPARK_DRIVER_URL"], "--executor-id", env["SPARK_EXECUTOR_ID"],
                "--cores", env["SPARK_EXECUTOR_CORES"], "--app-id", env["SPARK_APPLICATION_ID"],
                "--hostname", env["SPARK_EXECUTOR_POD_IP"],
                "--resourceProfileId", env.get("SPARK_RESOURCE_PROFILE_ID", "0"),
                "--podName", env.get("SPARK_EXECUTOR_POD_NAME", f"rlpad-exec-{env['SPARK_EXECUTOR_ID']}")]
    raise ValueError(f"unknown Spark pod role {role!r}")


def _main() -> int:
    # spark-submit runs this file as a script, which puts src/rlpad/ first on sys.path;
    # drop it so rlpad's module names can never shadow top-level ones.
    here = str(Path(__file__).resolve().parent)
    sys.path[:] = [p for p in sys.path if p and str(Path(p).resolve()) != here]
    from rlpad.cli import main
    rc = main()
    return rc if isinstance(rc, int) else 0


if __name__ == "__main__":
    sys.exit(_main())
