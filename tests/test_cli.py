"""The CLI surface: help, config printing, clear errors, the Spark pod roles."""
from __future__ import annotations

import json

import pytest

from conftest import rlpad
from rlpad.spark import SparkClusterError, k8s_role_command


def test_help_lists_every_stage():
    out = rlpad("--help").stdout
    for cmd in ("fit", "transform", "fit-gan", "eval", "config"):
        assert cmd in out


def test_config_prints_the_resolved_profile_with_overrides():
    cfg = json.loads(rlpad("config", "--profile", "breakout", "--set", "dqn.total_steps=123").stdout)
    assert cfg["dqn"]["total_steps"] == 123
    assert cfg["qnet"]["arch"] == "nature-cnn" and cfg["env"]["actions"] == [1, 2, 3]


def test_unknown_profile_names_the_known_ones():
    p = rlpad("config", "--profile", "nope", check=False)
    assert p.returncode == 2
    assert "unknown profile 'nope'" in p.stderr and "quick" in p.stderr and "breakout" in p.stderr


def test_bad_master_is_refused_before_any_work(tmp_path):
    p = rlpad("eval", "--store", str(tmp_path), "--master", "yarn", check=False)
    assert p.returncode == 2 and "RLPAD_SPARK_MASTER" in p.stderr


def test_missing_upstream_names_the_script(tmp_path):
    p = rlpad("eval", "--store", str(tmp_path), "--run", "empty", check=False)
    assert p.returncode == 2 and "1-initial-fit.sh" in p.stderr


def test_k8s_driver_runs_spark_submit_in_client_mode():
    cmd = k8s_role_command("driver", ["--properties-file", "/opt/spark/conf/spark.properties",
                                      "local:///opt/rlpad/src/rlpad/spark/submit_entry.py", "eval"],
                           {"SPARK_DRIVER_BIND_ADDRESS": "10.1.2.3"})
    assert cmd[0].endswith("bin/spark-submit")
    assert cmd[1:5] == ["--deploy-mode", "client", "--conf", "spark.driver.bindAddress=10.1.2.3"]
    assert cmd[-2:] == ["local:///opt/rlpad/src/rlpad/spark/submit_entry.py", "eval"]


def test_k8s_executor_needs_spark_env():
    env = {"SPARK_DRIVER_URL": "spark://CoarseGrainedScheduler@drv:7078", "SPARK_EXECUTOR_ID": "3",
           "SPARK_EXECUTOR_CORES": "1", "SPARK_APPLICATION_ID": "spark-abc",
           "SPARK_EXECUTOR_POD_IP": "10.0.0.9", "SPARK_EXECUTOR_MEMORY": "2g"}
    cmd = k8s_role_command("executor", [], env)
    assert "org.apache.spark.scheduler.cluster.k8s.KubernetesExecutorBackend" in cmd
    assert "-Xmx2g" in cmd
    assert cmd[cmd.index("--executor-id") + 1] == "3" and cmd[cmd.index("--hostname") + 1] == "10.0.0.9"
    with pytest.raises(SparkClusterError, match="SPARK_DRIVER_URL"):
        k8s_role_command("executor", [], {})
