"""fit_gan: the training loop (restarts, progress, checkpoints between steps, resume)."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import tensorflow as tf  # noqa: E402

from ..config import GanConfig  # noqa: E402
from .checkpoint import CKPT_MARKER, find_checkpoint, restore_checkpoint, save_checkpoint  # noqa: E402
from .common import CheckpointFn, GanError, ProgressFn  # noqa: E402
from .fitted import FittedGan, NormStats  # noqa: E402
from . import kinds  # noqa: E402
from .trainer import get_trainer  # noqa: E402

def _derived_seed(seed: int, attempt: int) -> int:
    return int(np.random.SeedSequence([int(seed), int(attempt), 0x9A4]).generate_state(1)[0] % (2**31 - 1))



_ROW = 5  # values in a step's metrics row; their names per kind are kinds.METRICS


@dataclass
class _TrainState:
    """Everything besides model/optimizer variables that a resumed fit needs."""

    attempt: int = 0
    restarts: int = 0
    step: int = 0            # steps done in the current attempt
    total_steps: int = 0     # steps done across attempts
    low: int = 0             # consecutive steps with D accuracy < restart_low
    high: int = 0            # ... > restart_high
    half: int = 0            # ... == 0.5 exactly
    win_sum: list = field(default_factory=lambda: [0.0] * _ROW)
    win_n: int = 0
    history: list = field(default_factory=list)
    restart_log: list = field(default_factory=list)
    gave_up: bool = False    # max_restarts used up; training went on without further restarts


def _data_digest(x: np.ndarray, labels: np.ndarray) -> str:
    """Cheap fingerprint of the training data (shape + a strided subset of rows)."""
    h = hashlib.sha256(f"{x.shape}|{labels.shape}".encode())
    stride = max(1, len(x) // 4096)
    h.update(np.ascontiguousarray(x[::stride]).tobytes())
    h.update(np.ascontiguousarray(labels[::stride]).astype(np.int64).tobytes())
    return h.hexdigest()[:16]


def _fingerprint(cfg: GanConfig, seed: int, digest: str, n_classes: int) -> str:
    d = dataclasses.asdict(cfg)
    for k in ("steps", "checkpoint_every", "log_every"):  # a resume may extend the budget / change cadence
        d.pop(k)
    # rng: how the loop draws its randomness (a checkpoint of another scheme cannot resume)
    blob = json.dumps({"cfg": d, "seed": seed, "data": digest, "k": n_classes,
                       "rng": "stateless-chunks-1"}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def fit_gan(x: np.ndarray, labels: np.ndarray, n_classes: int, cfg: GanConfig, seed: int, *,
            progress: ProgressFn | None = None, state_dir: str | os.PathLike | None = None,
            on_checkpoint: CheckpointFn | None = None) -> FittedGan:
    """Fit a conditional GAN on features x (n, F) with int labels in [0, n_classes).

    Deterministic given seed (CPU). With state_dir, a checkpoint is written every
    cfg.checkpoint_every steps (folder ckpt-<step>/, marker gan_ckpt.json last) and a later call
    resumes from the newest one; on_checkpoint(folder, step) is called after each (e.g. to
    upload it). progress(step, total, info) is called every cfg.log_every steps.
    """
    t0 = time.perf_counter()
    x = np.asarray(x, np.float32)
    labels = np.asarray(labels).reshape(-1)
    if x.ndim != 2 or len(x) != len(labels) or len(x) == 0:
        raise GanError(f"fit_gan: need x (n, F) and labels (n,), got {x.shape} and {labels.shape}")
    if not np.all(np.isfinite(x)):
        raise GanError("fit_gan: x has NaN or inf values")
    if labels.min() < 0 or labels.max() >= n_classes:
        raise GanError(f"fit_gan: labels must lie in [0, {n_classes})")
    labels = labels.astype(np.int32)
    n, feat_dim = x.shape
    norm = NormStats.fit(x, standardise=kinds.standardises(cfg))
    xs = norm.forward(x)
    class_probs = np.bincount(labels, minlength=n_classes).astype(np.float64) / n
    fp = _fingerprint(cfg, seed, _data_digest(x, labels), n_classes)

    st = _TrainState()
    resume_dir = find_checkpoint(state_dir) if state_dir is not None else None
    resumed_from = None
    if resume_dir is not None:
        marker = json.loads((resume_dir / CKPT_MARKER).read_text())
        if marker.get("fingerprint") != fp:
            raise GanError(f"checkpoint in {resume_dir} was made with another config, seed or "
                           "data; delete it (or rerun with --force) to start over")
        st = _TrainState(**marker["state"])
        resumed_from = {"attempt": st.attempt, "step": st.step, "total_steps": st.total_steps}

    trainer = get_trainer(cfg, feat_dim, n_classes)
    xs_t, lab_t = tf.constant(xs), tf.constant(labels)
    G, D, G_ema = trainer.G, trainer.D, trainer.G_ema
    while True:  # one pass per attempt (restart = new attempt with a new derived seed)
        aseed = _derived_seed(seed, st.attempt)
        trainer.reset(aseed, norm.lo, norm.hi)
        if resume_dir is not None:
            restore_checkpoint(resume_dir, G, D, trainer.g_opt, trainer.d_opt, G_ema)
            resume_dir = None

        restarted = False
        t_log, s_log = time.perf_counter(), st.step
        while st.step < cfg.steps and not restarted:
            # a chunk ends where the loop logs or checkpoints (or at the end)
            stop = min(cfg.steps, _next_multiple(st.step, cfg.log_every),
                       _next_multiple(st.step, cfg.checkpoint_every))
            rows = trainer.chunk(xs_t, lab_t, np.int64(aseed), np.int64(st.step),
                                 np.int32(stop - st.step)).numpy()
            for m in rows:
                st.step += 1
                st.total_steps += 1
                st.win_sum = [a + float(b) for a, b in zip(st.win_sum, m)]
                st.win_n += 1
                failure = _failure(cfg, st, m)
                if failure:
                    if st.restarts < cfg.max_restarts:
                        st.restart_log.append({"attempt": st.attempt, "step": st.step,
                                               "reason": failure})
                        st.history.append({"step": st.step, "attempt": st.attempt,
                                           "restart": failure})
                        st.restarts += 1
                        st.attempt += 1
                        st.step = st.low = st.high = st.half = st.win_n = 0
                        st.win_sum = [0.0] * _ROW
                        restarted = True
                        break
                    if not np.all(np.isfinite(m)):
                        raise GanError(f"GAN training diverged (non-finite loss at step {st.step}) "
                                       f"and max_restarts={cfg.max_restarts} is used up")
                    st.gave_up = True
            if restarted:
                break
            if st.step % cfg.log_every == 0 or st.step == cfg.steps:
                rec = {"step": st.step, "attempt": st.attempt}
                rec.update({k: v / st.win_n for k, v in zip(kinds.METRICS[cfg.variant], st.win_sum)})
                st.history.append(rec)
                st.win_sum, st.win_n = [0.0] * _ROW, 0
                if progress is not None:
                    now = time.perf_counter()
                    info = dict(rec, restarts=st.restarts,
                                steps_per_s=(st.step - s_log) / max(now - t_log, 1e-9))
                    t_log, s_log = now, st.step
                    progress(st.step, cfg.steps, info)
            # also at the end, so a later call with more steps continues from here
            if state_dir is not None and (st.step % cfg.checkpoint_every == 0 or st.step == cfg.steps):
                path = save_checkpoint(Path(state_dir), st, fp, G, D, trainer.g_opt,
                                       trainer.d_opt, G_ema)
                if on_checkpoint is not None:
                    on_checkpoint(str(path), st.total_steps)  # monotonic across restarts
        if not restarted:
            break

    info = {"seed": int(seed), "steps": st.step, "total_steps": st.total_steps,
            "attempts": st.attempt + 1, "restart_log": st.restart_log, "gave_up": st.gave_up,
            "n_train": int(n), "ema": G_ema is not None, "resumed_from": resumed_from,
            "wall_s": round(time.perf_counter() - t0, 3)}
    # the trainer's nets are reused by the next fit: the fitted generator gets its own copies
    g_copy, d_copy = kinds.build_nets(cfg, feat_dim, n_classes)
    g_copy.set_weights((G if G_ema is None else G_ema).get_weights())
    if d_copy is not None:
        d_copy.set_weights(D.get_weights())
    return FittedGan(g_copy, d_copy, cfg, feat_dim, n_classes, class_probs, norm,
                     st.history, st.restarts, info)


def _next_multiple(step: int, every: int) -> int:
    return (step // every + 1) * every


def _failure(cfg: GanConfig, st: _TrainState, m: np.ndarray) -> str | None:
    """The restart rule; updates the consecutive-step counters in st."""
    if not np.all(np.isfinite(m)):
        return "non-finite loss"
    if cfg.variant != "cgan-seed":
        return None
    acc = float(m[2])
    st.low = st.low + 1 if acc < cfg.restart_low else 0
    st.high = st.high + 1 if acc > cfg.restart_high else 0
    st.half = st.half + 1 if acc == 0.5 else 0
    w = cfg.restart_window
    if st.low >= w:
        return f"D accuracy < {cfg.restart_low} for {w} steps"
    if st.high >= w:
        return f"D accuracy > {cfg.restart_high} for {w} steps"
    if st.half >= w:
        return f"D accuracy == 0.5 for {w} steps"
    return None

