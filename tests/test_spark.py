"""rlpad.spark on real Spark: local[2], a standalone master + worker on 127.0.0.1, retries.

Only one SparkSession can live in a process, so the tests share one through `sessions`,
which stops the current session before starting one with other settings; tests that use
the same settings sit next to each other so each session starts once.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import pytest

from conftest import free_port
from rlpad import toy_trial
from rlpad.spark import (GridProgress, SparkClusterError, SparkSettings, SparkSettingsError,
                         TrialError, ctx_key, keep_local_sessions, parse_master, run_grid,
                         session,
                         spark_submit_command, worker_cache)

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "spark-cluster.sh"
TOY = "rlpad.toy_trial:run_trial"
CTX = {"store": "file:///nowhere", "run": "test", "offset": 0.5}
SPECS = [{"trial_id": f"t{i:02d}", "mode": "simple", "n_real": 500, "n_fake": 5000,
          "rep": i % 3, "seed": 12345 + i, "episodes": 4} for i in range(8)]
LOCAL2 = SparkSettings(master="local[2]")


def _strip(results: list[dict]) -> list[dict]:
    """Drop the toy's per-process diagnostics: what is left depends on spec and ctx only."""
    return [{k: v for k, v in r.items() if k != "worker"} for r in results]


def _expected(specs=SPECS) -> list[dict]:
    out = [json.loads(json.dumps(toy_trial.run_trial(s, CTX))) for s in specs]
    return _strip(sorted(out, key=lambda r: r["trial_id"]))


class _Sessions:
    """At most one live SparkSession, replaced when a test asks for other settings."""

    def __init__(self) -> None:
        self.stack: ExitStack | None = None
        self.settings: SparkSettings | None = None
        self.spark = None

    def get(self, settings: SparkSettings):
        if self.stack is None or self.settings != settings:
            self.close()
            self.stack = ExitStack()
            self.spark = self.stack.enter_context(session(settings))
            self.settings = settings
        return self.spark

    def close(self) -> None:
        if self.stack is not None:
            self.stack.close()
        self.stack = self.settings = self.spark = None


@pytest.fixture(scope="module")
def sessions():
    s = _Sessions()
    yield s
    s.close()


# ---- no Spark needed -----------------------------------------------------------------------
@pytest.mark.parametrize("url", ["", "local[0]", "local[x]", "local[2,0]", "local[2,]", "yarn",
                                 "spark://", "spark://host", "spark://host:port",
                                 "spark://h:70000", "k8s://", "k8s://https://", "http://h:1",
                                 "mesos://h:5050"])
def test_malformed_master_names_the_setting(url):
    with pytest.raises(SparkSettingsError, match="RLPAD_SPARK_MASTER"):
        SparkSettings(master=url).validate()


@pytest.mark.parametrize("url,kind,failures", [
    ("local", "local", None), ("local[*]", "local", None), ("local[2]", "local", None),
    ("local[2,3]", "local", 3), ("local[*,4]", "local", 4),
    ("spark://127.0.0.1:7077", "spark", None), ("spark://a:7077,b:7077", "spark", None),
    ("k8s://https://10.0.0.1:6443", "k8s", None), ("k8s://kube.example.org:443", "k8s", None)])
def test_valid_masters(url, kind, failures):
    m = parse_master(url)
    assert (m.kind, m.failures) == (kind, failures)


def test_other_settings_are_checked():
    with pytest.raises(SparkSettingsError, match="RLPAD_SPARK_EXECUTORS"):
        SparkSettings(master="spark://h:1", executors=0).validate()
    with pytest.raises(SparkSettingsError, match="RLPAD_SPARK_EXECUTOR_MEMORY"):
        SparkSettings(executor_memory="lots").validate()
    with pytest.raises(SparkSettingsError, match="RLPAD_SPARK_IMAGE"):
        SparkSettings(master="k8s://https://10.0.0.1:6443").validate()


def test_unreachable_master_fails_fast():
    port = free_port()  # closed again: nothing listens there
    t0 = time.monotonic()
    with pytest.raises(SparkClusterError, match=f"127.0.0.1:{port}.*not reachable"):
        run_grid(SPECS, TOY, CTX, SparkSettings(master=f"spark://127.0.0.1:{port}"))
    assert time.monotonic() - t0 < 30


def test_bad_grid_inputs():
    with pytest.raises(ValueError, match="module:function"):
        run_grid(SPECS, "rlpad.toy_trial.run_trial", CTX, LOCAL2)
    with pytest.raises(ValueError, match="not importable"):
        run_grid(SPECS, "rlpad.no_such_module:run", CTX, LOCAL2)
    with pytest.raises(ValueError, match="appears twice"):
        run_grid(SPECS + SPECS[:1], TOY, CTX, LOCAL2)
    with pytest.raises(ValueError, match="not JSON-able"):
        run_grid(SPECS, TOY, {"x": object()}, LOCAL2)


def test_worker_cache_and_ctx_key():
    calls = []
    key = (ctx_key(CTX), "unit-test")
    assert worker_cache(key, lambda: calls.append(1) or "v") == "v"
    assert worker_cache(key, lambda: calls.append(1) or "w") == "v"
    assert calls == [1]
    assert ctx_key(dict(reversed(list(CTX.items())))) == ctx_key(CTX)
    assert ctx_key({**CTX, "run": "other"}) != ctx_key(CTX)


def test_all_done_needs_no_spark():
    done = {r["trial_id"]: r for r in _expected()}
    # An unreachable master is never contacted: nothing is left to run.
    out = run_grid(SPECS, TOY, CTX, SparkSettings(master="spark://127.0.0.1:1"), done=done)
    assert out == _expected()


def test_spark_submit_command_standalone():
    s = SparkSettings(master="spark://127.0.0.1:7077", executors=3, executor_cores=2,
                      executor_memory="3g", driver_memory="1g", max_failures=5,
                      conf={"spark.executorEnv.TF_NUM_INTRAOP_THREADS": "1"})
    cmd = spark_submit_command(s, ["eval", "--profile", "quick"])
    assert cmd[0].endswith("/bin/spark-submit") and os.access(cmd[0], os.X_OK)
    assert cmd[1:7] == ["--master", "spark://127.0.0.1:7077", "--deploy-mode", "client",
                        "--name", "rlpad"]
    confs = dict(cmd[i + 1].split("=", 1) for i, c in enumerate(cmd) if c == "--conf")
    assert confs["spark.cores.max"] == "6" and confs["spark.executor.cores"] == "2"
    assert confs["spark.executor.memory"] == "3g" and confs["spark.driver.memory"] == "1g"
    assert confs["spark.task.maxFailures"] == "5"
    assert confs["spark.python.worker.reuse"] == "true"
    assert confs["spark.pyspark.python"] == sys.executable
    assert confs["spark.driver.host"] == "127.0.0.1"
    assert confs["spark.executorEnv.TF_NUM_INTRAOP_THREADS"] == "1"
    entry = cmd[-4]
    assert entry.endswith("/rlpad/spark/submit_entry.py") and Path(entry).is_file()
    assert cmd[-3:] == ["eval", "--profile", "quick"]


def test_spark_submit_command_k8s():
    s = SparkSettings(master="k8s://https://10.0.0.1:6443", executors=8, executor_cores=1,
                      executor_memory="4g", image="registry.example/rlpad:cpu",
                      namespace="rl", service_account="rlpad-driver")
    cmd = spark_submit_command(s, ["eval", "--run", "r1"])
    assert cmd[1:5] == ["--master", "k8s://https://10.0.0.1:6443", "--deploy-mode", "cluster"]
    confs = dict(cmd[i + 1].split("=", 1) for i, c in enumerate(cmd) if c == "--conf")
    assert confs["spark.kubernetes.container.image"] == "registry.example/rlpad:cpu"
    assert confs["spark.kubernetes.namespace"] == "rl"
    assert confs["spark.kubernetes.authenticate.driver.serviceAccountName"] == "rlpad-driver"
    assert confs["spark.executor.instances"] == "8"
    assert confs["spark.executor.memory"] == "4g"
    assert confs["spark.pyspark.python"] == "python3"
    assert "spark.driver.host" not in confs and "spark.cores.max" not in confs
    assert cmd[-4:] == ["local:///opt/rlpad/src/rlpad/spark/submit_entry.py", "eval", "--run", "r1"]


def test_cluster_script_needs_java(tmp_path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in ("bash", "dirname", "nproc", "id", "sed", "cat", "head", "cut", "mkdir"):
        if shutil.which(tool):
            (bindir / tool).symlink_to(shutil.which(tool))
    r = subprocess.run([str(bindir / "bash"), str(SCRIPT), "start", "--run-dir",
                        str(tmp_path / "run")], capture_output=True, text=True, timeout=30,
                       env={"PATH": str(bindir)})
    assert r.returncode != 0
    assert "apt-get install -y openjdk-17-jre-headless" in r.stderr


def test_worker_cache_keeps_the_last_runs_only():
    from rlpad.spark import worker as w

    saved = dict(w._WORKER_CACHE)
    w._WORKER_CACHE.clear()
    try:
        calls = []

        def load(run, name):
            calls.append((run, name))
            return f"{run}/{name}"

        for run in ("r0", "r1", "r2", "r3"):
            for name in ("a", "b"):
                assert worker_cache((run, name), lambda: load(run, name)) == f"{run}/{name}"
        assert worker_cache(("r0", "a"), lambda: load("r0", "a")) == "r0/a"  # cached, now newest
        assert len(calls) == 8
        worker_cache(("r4", "a"), lambda: load("r4", "a"))  # a fifth run: r1 (oldest used) goes
        assert {k[0] for k in w._WORKER_CACHE} == {"r0", "r2", "r3", "r4"}
        assert ("r0", "b") in w._WORKER_CACHE  # a run's entries stay or go together
        worker_cache(("r1", "a"), lambda: load("r1", "a"))
        assert calls[-1] == ("r1", "a") and len(calls) == 10
    finally:
        w._WORKER_CACHE.clear()
        w._WORKER_CACHE.update(saved)


# ---- local[2] ------------------------------------------------------------------------------
def test_local_grid(sessions):
    spark = sessions.get(LOCAL2)
    streamed: list[dict] = []
    progress: list[GridProgress] = []
    out = run_grid(SPECS, TOY, CTX, spark=spark, on_result=streamed.append,
                   on_progress=progress.append)
    assert [r["trial_id"] for r in out] == sorted(s["trial_id"] for s in SPECS)
    assert _strip(out) == _expected()
    assert sorted(r["trial_id"] for r in streamed) == [r["trial_id"] for r in out]
    assert [p.done for p in progress] == list(range(1, len(SPECS) + 1))
    assert progress[-1].total == len(SPECS) and progress[-1].eta_s == 0
    # Workers are reused and the loader ran once in each of them.
    workers = [r["worker"] for r in out]
    assert all(w["loads"] == 1 for w in workers)
    assert len({w["pid"] for w in workers}) < len(SPECS)
    assert all(w["attempt"] == 0 for w in workers)

    # A second grid on the same session: same results, still no reload.
    again = run_grid(SPECS, TOY, CTX, spark=spark)
    assert _strip(again) == _expected()
    assert all(r["worker"]["loads"] == 1 for r in again)


def test_costly_trials_are_scheduled_first(sessions):
    """Tasks start in partition order; the specs' "cost" puts the longest first (stable)."""
    costs = [1.0, 20.0, 1.5, 20.0, 0.0, 3.0]
    specs = [{**s, "cost": c} for s, c in zip(SPECS, costs)]
    out = run_grid(specs, TOY, CTX, spark=sessions.get(LOCAL2))
    by_partition = sorted(out, key=lambda r: r["worker"]["partition"])
    assert [r["trial_id"] for r in by_partition] == ["t01", "t03", "t05", "t02", "t00", "t04"]
    assert _strip(out) == _strip(_expected(specs))


def test_done_skips_finished_trials(sessions):
    spark = sessions.get(LOCAL2)
    expected = {r["trial_id"]: r for r in _expected()}
    done = {tid: {**expected[tid], "from_done": True} for tid in ("t01", "t04", "t07")}
    streamed: list[dict] = []
    out = run_grid(SPECS, TOY, CTX, spark=spark, done=done, on_result=streamed.append)
    assert sorted(r["trial_id"] for r in streamed) == ["t00", "t02", "t03", "t05", "t06"]
    by_id = {r["trial_id"]: r for r in out}
    assert sorted(by_id) == sorted(expected)
    assert all(by_id[t].get("from_done") for t in done)  # returned as given, not re-run
    assert _strip([r for r in out if r["trial_id"] not in done]) == \
        [r for t, r in sorted(expected.items()) if t not in done]


def test_failing_trial_names_it(sessions):
    spark = sessions.get(LOCAL2)
    specs = [dict(s, broken=(s["trial_id"] == "t03")) for s in SPECS]
    with pytest.raises(TrialError, match=r"'t03' failed on all 1 attempt\(s\): "
                       r"ValueError: toy trial t03 is broken") as e:
        run_grid(specs, "rlpad.toy_trial:broken_trial", CTX, spark=spark)
    assert e.value.trial_id == "t03"
    assert "toy_trial.py" in str(e.value)  # the trial's own traceback comes along


def test_on_result_error_cancels_the_grid(sessions):
    spark = sessions.get(LOCAL2)

    class Persist(Exception):
        pass

    def on_result(result: dict) -> None:
        raise Persist(result["trial_id"])

    with pytest.raises(Persist):
        run_grid(SPECS, TOY, CTX, spark=spark, on_result=on_result)
    # The cancelled job leaves the session usable.
    assert _strip(run_grid(SPECS[:2], TOY, CTX, spark=spark)) == _expected(SPECS[:2])


def _stopped(spark) -> bool:
    return spark.sparkContext._jsc is None


def test_kept_local_session_is_reused_only_for_the_same_settings(sessions):
    """conftest keeps local sessions (`keep_local_sessions`): the same settings get the same
    live session and its workers (the loader does not run again); other settings stop it."""
    sessions.close()
    with session(LOCAL2) as a:
        first = run_grid(SPECS[:2], TOY, CTX, spark=a)
    with session(LOCAL2) as b:
        assert b is a and not _stopped(a)
        with pytest.raises(SparkClusterError, match="already active"):
            with session(SparkSettings(master="local[1]")):
                pass  # a second session inside the block is refused; the kept one lives on
        assert not _stopped(a)
        again = run_grid(SPECS[:2], TOY, CTX, spark=b)
    pids = {r["worker"]["pid"] for r in first}
    assert {r["worker"]["pid"] for r in again} <= pids
    assert all(r["worker"]["loads"] == 1 for r in again)
    with session(SparkSettings(master="local[1]")) as c:
        assert c is not a and _stopped(a)
    keep_local_sessions(False)  # stops the kept one
    try:
        assert _stopped(c)
        with session(LOCAL2) as d:
            pass
        assert _stopped(d)  # not kept: stopped on exit
    finally:
        keep_local_sessions(True)


# ---- standalone master + worker --------------------------------------------------------------
@pytest.fixture(scope="module")
def standalone(sessions, spark_cluster):
    yield spark_cluster
    sessions.close()  # this module's app leaves the shared cluster


def test_standalone_grid_matches_local(sessions, standalone):
    url, args = standalone
    st = subprocess.run([str(SCRIPT), "status", *args], capture_output=True, text=True, timeout=30)
    assert st.returncode == 0 and "alive workers: 1" in st.stdout, st.stdout + st.stderr
    settings = SparkSettings(master=url, executors=1, executor_cores=2, executor_memory="1g")
    out = run_grid(SPECS, TOY, CTX, spark=sessions.get(settings))
    assert _strip(out) == _expected()
    assert all(r["worker"]["loads"] == 1 for r in out)
    assert {r["worker"]["pid"] for r in out}.isdisjoint({os.getpid()})


def test_k8s_executor_role_joins_a_real_driver(sessions, standalone, tmp_path):
    """`rlpad executor` as Spark on Kubernetes starts it in an executor pod (the pod's env), here
    pointed at a live driver: it must register and run Python tasks, with the driver's JVM
    options (SPARK_JAVA_OPT_n, in order) and the pod's memory on the JVM's command line."""
    url, _ = standalone
    spark = sessions.get(SparkSettings(master=url, executors=1, executor_cores=2, executor_memory="1g"))
    sc = spark.sparkContext
    port = sc.getConf().get("spark.driver.port")
    host = sc.getConf().get("spark.driver.host")
    env = dict(os.environ, SPARK_DRIVER_URL=f"spark://CoarseGrainedScheduler@{host}:{port}",
               SPARK_EXECUTOR_ID="7", SPARK_EXECUTOR_CORES="1", SPARK_APPLICATION_ID=sc.applicationId,
               SPARK_EXECUTOR_POD_IP="127.0.0.1", SPARK_EXECUTOR_MEMORY="600m",
               SPARK_JAVA_OPT_0=f"-Dspark.driver.port={port}", SPARK_JAVA_OPT_2="-Drlpad.second=b",
               SPARK_JAVA_OPT_10="-Drlpad.last=c d", SPARK_JAVA_OPT_1="-Drlpad.first=a",
               RLPAD_TEST_MARK="pod")
    rlpad_bin = str(Path(sys.executable).with_name("rlpad"))
    with open(tmp_path / "executor.log", "w") as log:
        proc = subprocess.Popen([rlpad_bin, "executor"], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90
        while "7" not in sc._jsc.sc().getExecutorIds().mkString(",").split(","):
            assert proc.poll() is None, (tmp_path / "executor.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the executor never registered"
            time.sleep(0.5)
        jvm = Path(f"/proc/{proc.pid}/cmdline").read_bytes().decode().split("\0")  # exec'd java
        opts = [a for a in jvm if a.startswith("-D")]
        assert opts == [f"-Dspark.driver.port={port}", "-Drlpad.first=a", "-Drlpad.second=b",
                        "-Drlpad.last=c d"]
        assert "-Xmx600m" in jvm and "org.apache.spark.scheduler.cluster.k8s.KubernetesExecutorBackend" in jvm
        marks = sc.parallelize(range(60), 60).map(lambda _: os.environ.get("RLPAD_TEST_MARK")).collect()
        assert marks.count("pod") > 0  # tasks ran on the pod-style executor ...
        assert marks.count(None) > 0  # ... and on the worker's
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_standalone_without_fitting_worker_times_out(sessions, standalone):
    url, _ = standalone
    sessions.close()
    # The worker offers 2 cores; an executor of 4 never fits, so no executor ever comes.
    settings = SparkSettings(master=url, executors=1, executor_cores=4, executor_memory="1g",
                             executor_wait_s=5)
    t0 = time.monotonic()
    with pytest.raises(SparkClusterError, match="no executor registered"):
        with session(settings):
            pass
    assert time.monotonic() - t0 < 60


# ---- retries: local[2,3] -------------------------------------------------------------------
def test_retried_trials_give_identical_results(sessions):
    spark = sessions.get(SparkSettings(master="local[2,3]"))
    flaky = {"t00", "t03", "t04"}
    specs = [dict(s, flaky=s["trial_id"] in flaky) for s in SPECS]
    out = run_grid(specs, "rlpad.toy_trial:flaky_trial", CTX, spark=spark)
    assert _strip(out) == _expected(specs)
    attempts = {r["trial_id"]: r["worker"]["attempt"] for r in out}
    assert {t for t, a in attempts.items() if a > 0} == flaky
    assert all(attempts[t] == 1 for t in flaky)
    # Identical to a clean run of the plain trial (the flaky flag does not change a result).
    assert _strip(out) == _expected()

    broken = [dict(s, broken=(s["trial_id"] == "t05")) for s in SPECS]
    with pytest.raises(TrialError, match=r"'t05' failed on all 3 attempt\(s\)"):
        run_grid(broken, "rlpad.toy_trial:broken_trial", CTX, spark=spark)


# ---- spark-submit entry ----------------------------------------------------------------------
def test_spark_submit_entry_reaches_cli(sessions):
    sessions.close()
    cmd = spark_submit_command(SparkSettings(master="local[1]"), ["--help"])
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=180,
                       env={**os.environ, "SPARK_LOCAL_IP": "127.0.0.1"})
    assert r.returncode == 0, r.stderr[-3000:]
    assert "usage: rlpad" in r.stdout
