"""Cluster runs: the spark-submit command line and the Spark-on-Kubernetes pod roles."""
from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from .errors import SparkClusterError
from .settings import SparkSettings, spark_conf


# ---- cluster runs --------------------------------------------------------------------------
def spark_home() -> str:
    """The pyspark package folder: the wheel ships bin/spark-submit and bin/spark-class."""
    import pyspark
    return os.path.dirname(pyspark.__file__)


def spark_submit_command(settings: SparkSettings, entry_args: Sequence[str], *,
                         spark_home_dir: str | None = None) -> list[str]:
    """A spark-submit command line that runs `rlpad <entry_args...>` (e.g. ["eval", ...]) as
    a Spark application: spark:// and local in client mode (the driver runs here), k8s in
    cluster mode (the driver runs in a pod from settings.image). The entry file is
    submit_entry.py, whose __main__ hands over to rlpad.cli.main."""
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
    cmd.append(settings.k8s_entry if k8s else str(Path(__file__).resolve().with_name("submit_entry.py")))
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
