"""Stage 3 (`rlpad fit-gan`) on the shared quick run: its diagnostics and plots, the generator
it publishes, refusal of a corrupted or missing upstream, and kill -9 then resume.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import QUICK_GAN, RLPAD, ROOT, rlpad
from rlpad.store import Store

STAGE = "3-fit-gan"
PNG = b"\x89PNG\r\n\x1a\n"


def _copy(store: str, run: str, dst: Path, stages: tuple[str, ...]) -> Path:
    for s in stages:
        shutil.copytree(Path(store) / run / s, dst / run / s)
    return dst


def _flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def test_manifest_holds_diagnostics_and_plots(quick_run):
    store, run = quick_run
    st = Store(store)
    m = st.manifest(run, STAGE)
    assert m is not None
    met = m["metrics"]
    assert met["variant"] == "wgan-gp" and met["steps"] == 300
    assert 0.0 <= met["c2st_accuracy"] <= 1.0
    assert np.isfinite(met["fd_real_fake"]) and met["fd_real_fake"] >= 0
    assert np.isfinite(met["fd_real_real"]) and met["fd_real_real"] >= 0
    assert met["fd_ratio"] == pytest.approx(met["fd_real_fake"] / met["fd_real_real"], rel=1e-6)
    assert isinstance(met["restarts"], int) and met["restarts"] >= 0
    n = st.manifest(run, "2-transform")["metrics"]["n_transitions"]
    assert met["n_train"] + met["n_holdout"] == n and abs(met["n_holdout"] - 0.2 * n) <= 12
    # Per-class diagnostics for every class of the table; the classes CartPole has get numbers.
    per = met["per_class"]
    assert sorted(per, key=int) == [str(k) for k in range(12)]
    present = {k for k, v in per.items() if v["n_real"] > 0}
    assert len(present) == st.manifest(run, "2-transform")["metrics"]["classes_present"] >= 2
    assert sum(per[k]["n_real"] for k in present) == met["n_holdout"]
    assert any(per[k]["c2st_accuracy"] is not None and per[k]["fd_real_fake"] is not None
               for k in present)
    assert m["upstream"] == {"2-transform": st.manifest(run, "2-transform")["_sha256"]}
    for name in ("training.png", "histograms.png", "quality.json", "gan.json",
                 "generator.weights.h5", "discriminator.weights.h5"):
        assert name in m["files"], name
    for name in ("training.png", "histograms.png"):
        path = Path(store) / run / STAGE / name
        assert path.read_bytes()[:8] == PNG and path.stat().st_size > 5000
    q = json.loads((Path(store) / run / STAGE / "quality.json").read_text())
    assert q["c2st_accuracy"] == met["c2st_accuracy"]
    # The stage cleared its checkpoints once published.
    assert not (Path(store) / run / STAGE / "_ckpt").exists()


def test_generator_shapes_and_dtypes(quick_run):
    from rlpad.embed import Embedded
    from rlpad.generators import to_transitions
    from rlpad.artifacts import load_fitted_gan

    store, run = quick_run
    st = Store(store)
    gan = load_fitted_gan(st, run)
    emb = Embedded.load(st.require(run, "2-transform").local_path("embeddings.h5"))
    assert gan.feat_dim == emb.features.shape[1] == 128
    assert gan.n_classes == len(emb.class_table) == 12

    x, lab = gan.sample(37, seed=3)
    assert x.shape == (37, 128) and x.dtype == np.float32 and np.isfinite(x).all()
    assert lab.shape == (37,) and lab.dtype == np.int32
    # Labels come from the data's class frequencies: only classes CartPole has.
    assert set(lab.tolist()) <= set(np.unique(emb.labels).tolist())
    want = np.asarray(emb.labels[:5], np.int32)
    x2, lab2 = gan.sample(5, labels=want, seed=3)
    assert x2.shape == (5, 128) and x2.dtype == np.float32
    np.testing.assert_array_equal(lab2, want)
    again, _ = gan.sample(37, seed=3)
    np.testing.assert_array_equal(again, x)  # deterministic in its seed
    # wgan-gp clips to the data's per-dimension range.
    lo, hi = emb.features.min(0), emb.features.max(0)
    assert (x >= lo - 1e-3 * (1 + abs(lo))).all() and (x <= hi + 1e-3 * (1 + abs(hi))).all()
    t = to_transitions(x, lab, emb.class_table, emb.embed_dim)
    assert t["e_s"].shape == t["e_next"].shape == (37, 64)
    assert t["action"].dtype == np.int32 and set(t["action"].tolist()) <= {0, 1}
    assert set(t["reward_sign"].tolist()) <= {1.0}


def test_corrupted_embeddings_are_refused(quick_run, tmp_path):
    store, run = quick_run
    copy = _copy(store, run, tmp_path / "store", ("1-fit", "2-transform"))
    _flip_byte(copy / run / "2-transform" / "embeddings.h5")
    p = rlpad("fit-gan", "--store", str(copy), "--run", run, *QUICK_GAN, check=False, timeout=300)
    assert p.returncode == 2, p.stdout + p.stderr
    assert "embeddings.h5" in p.stderr and "checksum" in p.stderr and "--force" in p.stderr, p.stderr
    assert "2-transform.sh" in p.stderr
    assert not (copy / run / STAGE / "manifest.json").exists()


def test_fitgan_without_transform_names_the_script(quick_run, tmp_path):
    store, run = quick_run
    copy = _copy(store, run, tmp_path / "store", ("1-fit",))
    p = rlpad("fit-gan", "--store", str(copy), "--run", run, *QUICK_GAN, check=False, timeout=120)
    assert p.returncode == 2, p.stdout + p.stderr
    assert "2-transform.sh" in p.stderr and "2-transform" in p.stderr, p.stderr
    assert not (copy / run / STAGE).exists()


def test_kill9_then_resume(quick_run, tmp_path):
    store, run = quick_run
    copy = _copy(store, run, tmp_path / "store", ("1-fit", "2-transform"))
    sets = ["--set", "gan.steps=200", "--set", "gan.checkpoint_every=20", "--set", "gan.log_every=20"]
    args = ["fit-gan", "--store", str(copy), "--run", run, *sets]
    ckpt = copy / run / STAGE / "_ckpt"
    proc = subprocess.Popen(RLPAD + args, cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        deadline = time.monotonic() + 240
        while not list(ckpt.glob("*/COMPLETE.json")):
            assert proc.poll() is None, f"fit-gan ended before its first checkpoint:\n{proc.stdout.read()}"
            assert time.monotonic() < deadline, "no checkpoint within 240 s"
            time.sleep(0.05)
        seen = max(int(p.parent.name) for p in ckpt.glob("*/COMPLETE.json"))
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert not (copy / run / STAGE / "manifest.json").exists()
    assert 0 < seen < 200

    p = rlpad(*args, timeout=600)
    m = re.search(r"resuming from checkpoint at step ([\d,]+)", p.stdout)
    assert m, p.stdout
    step = int(m[1].replace(",", ""))
    assert seen <= step < 200 and step % 20 == 0
    man = json.loads((copy / run / STAGE / "manifest.json").read_text())
    met = man["metrics"]
    for k in ("c2st_accuracy", "fd_real_fake", "fd_real_real", "restarts"):
        assert met[k] is not None, k
    assert met["steps"] == 200
    gan = json.loads((copy / run / STAGE / "gan.json").read_text())
    assert gan["info"]["resumed_from"]["step"] == step
    assert gan["info"]["steps"] == 200
    assert not ckpt.exists()  # checkpoints are cleared once the stage is published
