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

from .errors import SparkClusterError, TrialError
from .grid import GridProgress, run_grid
from .launch import k8s_role_command, spark_home, spark_submit_command
from .session import keep_local_sessions, probe_master, session
from .settings import MASTER_SETTING, Master, SparkSettings, SparkSettingsError, parse_master, spark_conf
from .worker import clear_worker_cache, ctx_key, load_trial_fn, run_one, worker_cache

__all__ = ["GridProgress", "MASTER_SETTING", "Master", "SparkClusterError", "SparkSettings",
           "SparkSettingsError", "TrialError", "clear_worker_cache", "ctx_key", "k8s_role_command",
           "keep_local_sessions",
           "load_trial_fn", "parse_master", "probe_master", "run_grid", "run_one", "session",
           "spark_conf", "spark_home", "spark_submit_command", "worker_cache"]
