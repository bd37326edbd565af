"""Shared fixtures: one small but real pipeline run per test session.

Stage 1 runs the quick profile as shipped (it stops once 10 greedy episodes reach 500), so
downstream tests work on a real, competent agent; stages 2-3 use small budgets (QUICK_TRANSFORM,
QUICK_GAN).
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

import rlpad  # noqa: F401  before any test module imports TensorFlow: it sets TF's CPU kernels
from rlpad.spark import keep_local_sessions

# The in-process `rlpad eval` calls on local[2] share one SparkSession and its Python workers
# (each new one imports TensorFlow again); a test needing another master replaces it.
keep_local_sessions()

ROOT = Path(__file__).resolve().parents[1]
RLPAD = [sys.executable, "-m", "rlpad.cli"]
QUICK_GAN = ["--set", "gan.steps=300", "--set", "gan.checkpoint_every=100"]
# the agent's play that stage 2 embeds: 5,000 steps (the profile's 20,000 cost ~20 s more)
QUICK_TRANSFORM = ["--set", "transform.policy_steps=5000"]

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def standalone_spark(run_dir: Path) -> Iterator[tuple[str, list[str]]]:
    """A real standalone master + worker on 127.0.0.1 (scripts/spark-cluster.sh):
    yields (master URL, the script's --run-dir args)."""
    script = ROOT / "scripts" / "spark-cluster.sh"
    args = ["--run-dir", str(run_dir)]
    r = subprocess.run([str(script), "start", "--port", str(free_port()), "--webui-port",
                        str(free_port()), "--cores", "2", "--memory", "1536m", *args],
                       capture_output=True, text=True, timeout=240)
    try:
        assert r.returncode == 0, r.stderr
        url = r.stdout.strip().splitlines()[-1]
        assert url.startswith("spark://127.0.0.1:")
        yield url, args
    finally:
        subprocess.run([str(script), "stop", *args], capture_output=True, timeout=60)


@pytest.fixture(scope="session")
def spark_cluster(tmp_path_factory) -> Iterator[tuple[str, list[str]]]:
    """One standalone master + worker for the whole session (starting one costs ~10 s):
    (master URL, the script's --run-dir args). A test module that keeps an app on it stops the
    app in its own teardown, before this one stops the cluster."""
    with standalone_spark(tmp_path_factory.mktemp("spark-cluster")) as c:
        yield c


def record_writes(monkeypatch) -> list[str]:
    """Record every object path the store writes (files and bytes), in order."""
    from rlpad.store import Store

    order: list[str] = []
    orig_put, orig_write = Store.put_file, Store.write_bytes

    def put_file(self, local, path):
        order.append(path)
        orig_put(self, local, path)

    def write_bytes(self, path, data):
        order.append(path)
        orig_write(self, path, data)

    monkeypatch.setattr(Store, "put_file", put_file)
    monkeypatch.setattr(Store, "write_bytes", write_bytes)
    return order


def rlpad(*args: str, check: bool = True, timeout: float = 900, env: dict | None = None
          ) -> subprocess.CompletedProcess:
    """Run the CLI as a user would; output is captured for assertions. Without `env`, it runs
    in this process (`rlpad.cli.main`, the console script's own function): the same code, without
    a new interpreter and TensorFlow import per call. With `env`, a fresh `python -m rlpad.cli`."""
    if env is None:
        p = _in_process(list(args))
    else:
        p = subprocess.run(RLPAD + list(args), capture_output=True, text=True, timeout=timeout,
                           cwd=ROOT, env={**os.environ, **env})
    if check and p.returncode != 0:
        raise AssertionError(f"rlpad {' '.join(args)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    return p


def _in_process(argv: list[str]) -> subprocess.CompletedProcess:
    import contextlib
    import io
    import traceback

    from rlpad.cli import main

    out, err, cwd = io.StringIO(), io.StringIO(), os.getcwd()
    try:
        os.chdir(ROOT)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                rc = main(argv)
            except SystemExit as e:  # argparse's usage errors
                rc = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
            except Exception:  # what the interpreter would print before exiting 1
                traceback.print_exc()
                rc = 1
    finally:
        os.chdir(cwd)
    return subprocess.CompletedProcess(["rlpad", *argv], rc, out.getvalue(), err.getvalue())


@pytest.fixture(scope="session")
def quick_run(tmp_path_factory) -> tuple[str, str]:
    """(store, run) holding complete stages 1-3 of the quick profile."""
    store = str(tmp_path_factory.mktemp("store"))
    run = "quick"
    common = ["--store", store, "--run", run]
    rlpad("fit", *common)
    rlpad("transform", *common, *QUICK_TRANSFORM)
    rlpad("fit-gan", *common, *QUICK_GAN)
    return store, run


STUDY_DQN = ["dqn.total_steps=3000", "dqn.learning_starts=500", "dqn.eval_every=2000",
       "dqn.eval_episodes=2", "dqn.checkpoint_every=1000", "dqn.final_eval_episodes=3",
       "dqn.stop_at_eval_return=0", "transform.policy_steps=3000"]
STUDY_SETS = STUDY_DQN + ["study.agents=2", "study.sanity_episodes=10", "eval.n_real=[200,0]",
              "eval.n_fake=[0,500]", "eval.repetitions=2", "eval.episodes=3", "eval.n_envs=3",
              'eval.modes=["none","simple"]', "study.primary=simple"]
STUDY_ARGS = [a for s in STUDY_SETS for a in ("--set", s)] + QUICK_GAN


@pytest.fixture(scope="session")
def study_run(tmp_path_factory):
    """A study of two agents through stages 1-4 (test_study_pipeline.py's subject; the
    dashboard reads it too): stage 1 killed while it trains agent 2, stage 4 once 5 tasks
    are saved, each rerun."""
    dst = tmp_path_factory.mktemp("study") / "store"
    run = "study"
    common = ["--store", str(dst), "--run", run, *STUDY_ARGS]
    # the failpoint counts the agent steps of this process: agent 1's 3,000, then agent 2's
    env = {**os.environ, "RLPAD_FAILPOINTS": "1-fit.step=4800", "PYTHONUNBUFFERED": "1"}
    killed = subprocess.run(RLPAD + ["fit", *common], cwd=ROOT, capture_output=True, text=True,
                            env=env, timeout=600)
    before = (dst / run / "agents" / "1" / "1-fit" / "manifest.json").read_bytes()
    fit = rlpad("fit", *common)
    outs = [fit.stdout + fit.stderr]
    for cmd in ("transform", "fit-gan"):
        p = rlpad(cmd, *common)
        outs.append(p.stdout + p.stderr)
    # stage 4 killed once 5 of its 18 tasks are saved, then rerun
    env4 = {**os.environ, "RLPAD_FAILPOINTS": "4-eval.persist=5", "PYTHONUNBUFFERED": "1"}
    killed4 = subprocess.run(RLPAD + ["eval", *common, "--master", "local[2]"], cwd=ROOT,
                             capture_output=True, text=True, env=env4, timeout=600)
    saved = sorted(p.stem for p in (dst / run / "4-eval" / "_trials").glob("*/*.json"))
    p = rlpad("eval", *common, "--master", "local[2]")
    outs.append(p.stdout + p.stderr)
    return dst, run, (killed, killed4, saved), before, outs
