"""Starting a SparkSession: probe the master, wait for executors, stop on exit."""
from __future__ import annotations

import atexit
import logging
import os
import shutil
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .errors import SparkClusterError
from .settings import MASTER_SETTING, Master, SparkSettings, SparkSettingsError, parse_master, spark_conf

log = logging.getLogger(__name__)

# Spark's own marker for "launched by spark-submit": the JVM and its conf already exist.
_SUBMITTED_ENV = "PYSPARK_GATEWAY_PORT"


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


# A local session kept between `session()` calls (see `keep_local_sessions`): its key and itself.
_kept: dict[str, Any] = {"on": False, "key": None, "spark": None, "in_use": False}


def keep_local_sessions(on: bool = True) -> None:
    """Keep a local SparkSession alive after `session()` exits, for the next call with the same
    master and conf in this process (a notebook or a test run calling many grids): its Python
    workers, with the artifacts and traced functions they loaded, are reused instead of
    importing TensorFlow again. Off (the default), every `session()` stops its own. Turning it
    off stops a kept session."""
    _kept["on"] = bool(on)
    if not on:
        _stop_kept()


def _stop_kept() -> None:
    spark, _kept["spark"], _kept["key"] = _kept["spark"], None, None
    if spark is not None:
        try:
            spark.stop()
        except Exception:  # noqa: BLE001 - a JVM that died: nothing left to stop
            log.warning("the kept SparkSession did not stop cleanly", exc_info=True)


atexit.register(_stop_kept)


def _is_stopped(spark: Any) -> bool:
    jsc = spark.sparkContext._jsc  # None once stopped from Python
    try:
        return jsc is None or jsc.sc().isStopped()
    except Exception:  # noqa: BLE001 - the JVM is gone
        return True


@contextmanager
def session(settings: SparkSettings | None = None) -> Iterator[Any]:
    """A SparkSession for `settings`, stopped on exit (a local one may be kept instead: see
    `keep_local_sessions`).

    Under spark-submit (see `spark_submit_command`) the submitted conf is used as it is and
    `settings.master` is ignored. Only one SparkSession may be active per process.
    """
    from pyspark import SparkContext
    from pyspark.sql import SparkSession

    settings = settings or SparkSettings()
    submitted = _SUBMITTED_ENV in os.environ
    # Under spark-submit the master and its settings came with the submission.
    master = parse_master("local") if submitted else settings.validate()
    keep = _kept["on"] and not submitted and master.kind == "local"
    key = (master.url, tuple(sorted(spark_conf(settings, master).items())),
           settings.python_exec(master)) if keep else None
    # A kept session in use by an enclosing `session()` block is left alone: the check below
    # then refuses a second one, as without keeping.
    if _kept["spark"] is not None and not _kept["in_use"]:
        if key is not None and key == _kept["key"] and not _is_stopped(_kept["spark"]):
            _kept["in_use"] = True
            try:
                yield _kept["spark"]
            except BaseException:
                _stop_kept()  # as a fresh session would be stopped on an error
                raise
            finally:
                _kept["in_use"] = False
            return
        _stop_kept()
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
    _kept["in_use"] = keep
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
    except BaseException:
        spark.stop()
        raise
    finally:
        _kept["in_use"] = False
    if keep:
        _kept["spark"], _kept["key"] = spark, key
    else:
        spark.stop()


def _parse_or_none(url: str) -> Master | None:
    try:
        return parse_master(url)
    except SparkSettingsError:
        return None
