"""Shared fixtures: one small but real pipeline run per test session.

Stage 1 runs the quick profile as shipped (it stops once 10 greedy episodes reach 500), so
downstream tests work on a real, competent agent; stages 2-3 use small budgets.
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

ROOT = Path(__file__).resolve().parents[1]
RLPAD = [sys.executable, "-m", "rlpad.cli"]
QUICK_GAN = ["--set", "gan.steps=300", "--set", "gan.checkpoint_every=100"]

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def standalone_spark(run_dir: Path, before_stop=None) -> Iterator[tuple[str, list[str]]]:
    """A real standalone master + worker on 127.0.0.1 (scripts/spark-cluster.sh):
    yields (master URL, the script's --run-dir args); `before_stop` runs before teardown."""
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
        if before_stop:
            before_stop()  # the app goes before its cluster
        subprocess.run([str(script), "stop", *args], capture_output=True, timeout=60)


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
    rlpad("transform", *common)
    rlpad("fit-gan", *common, *QUICK_GAN)
    return store, run
