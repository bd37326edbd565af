"""Bad input at the edges: one clear line naming the key or setting, exit != 0, before heavy
work, and the store left as it was."""
from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from conftest import ROOT, free_port, rlpad


def _copy(store: str, run: str, dst: Path) -> Path:
    for s in ("1-fit", "2-transform", "3-fit-gan"):
        shutil.copytree(Path(store) / run / s, dst / run / s)
    return dst


def _one_error_line(p: subprocess.CompletedProcess) -> str:
    assert p.returncode != 0
    assert "Traceback" not in p.stderr, p.stderr[-3000:]
    return p.stderr.strip().splitlines()[-1]


def test_n_fake_too_large_for_memory_is_refused_up_front(quick_run, tmp_path):
    store, run = quick_run
    dst = _copy(store, run, tmp_path / "s")
    t = time.time()
    p = rlpad("eval", "--store", str(dst), "--run", run, "--set", "eval.n_fake=[0,1000000000]",
              check=False)
    line = _one_error_line(p)
    assert "eval.n_fake" in line and "GiB" in line and "lower eval.n_fake" in line
    assert time.time() - t < 60 and not (dst / run / "4-eval").exists()


def test_n_real_above_an_agents_data_is_a_warning_naming_the_size_used():
    from rlpad.config import load_config
    from rlpad.trials import grid_specs

    said: list[str] = []
    specs = grid_specs(load_config("quick", ["eval.n_real=[100,9000]"]), 5000, log=said.append)
    assert {s["n_real"] for s in specs} == {100, 5000}
    assert len(said) == 1 and "eval.n_real=9,000" in said[0] and "all 5,000" in said[0]


def test_dead_spark_master_through_the_script_fails_within_seconds(quick_run, tmp_path):
    store, run = quick_run
    dst = _copy(store, run, tmp_path / "s")
    env = {**os.environ, "RLPAD_STORE": str(dst), "RLPAD_RUN": run,
           "RLPAD_SPARK_MASTER": f"spark://127.0.0.1:{free_port()}"}
    t = time.time()
    p = subprocess.run(["bash", str(ROOT / "4-scaled-simple-eval.sh")], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=120)
    line = _one_error_line(p)
    assert time.time() - t < 10 + 15  # the probe's 5 s, and the CLI's start
    assert "not reachable" in line and "RLPAD_SPARK_MASTER" in line


def test_corrupt_generator_is_refused_before_spark_starts(quick_run, tmp_path):
    store, run = quick_run
    dst = _copy(store, run, tmp_path / "s")
    f = dst / run / "3-fit-gan" / "generator.weights.h5"
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0xFF
    f.write_bytes(bytes(data))
    p = rlpad("eval", "--store", str(dst), "--run", run, "--master", "local[1]", check=False)
    line = _one_error_line(p)
    assert "generator.weights.h5" in line and "checksum" in line
    assert "Spark" not in p.stdout + p.stderr  # no session was started
    assert not (dst / run / "4-eval").exists()


def test_gs_store_without_a_bucket_says_so(tmp_path):
    p = rlpad("fit", "--store", "gs://", "--run", "x", check=False)
    line = _one_error_line(p)
    assert "names no bucket" in line and "RLPAD_STORE" in line


def test_empty_profile_is_an_error(tmp_path):
    prof = tmp_path / "empty.toml"
    prof.write_text("# nothing here\n")
    p = rlpad("config", "--profile", str(prof), check=False)
    line = _one_error_line(p)
    assert "empty" in line and str(prof) in line


def test_a_failing_loader_is_not_chained_to_a_cache_miss():
    from rlpad.spark import clear_worker_cache, worker_cache

    def broken():
        raise ValueError("the trial's own error")

    clear_worker_cache()
    with pytest.raises(ValueError) as e:
        worker_cache("k", broken)
    assert e.value.__context__ is None  # no "During handling of KeyError" above it
