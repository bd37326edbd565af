"""How good are the GAN's samples? Fréchet distances against a real-vs-real noise floor, a
classifier two-sample test (C2ST), training curves and feature histograms.

Also ``synthetic_features``: a labelled feature set shaped like stage 2's output, for tests and
tuning before real data exists.
"""
from __future__ import annotations

import math
import os
import warnings

import numpy as np
import scipy.linalg

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

MIN_CLASS_C2ST = 100   # per class and side in the balanced set; fewer -> that class is skipped
MIN_CLASS_FD = 20      # per class (both halves of the real hold-out); fewer -> skipped


# ---------------------------------------------------------------------------------------------
# Fréchet distance
# ---------------------------------------------------------------------------------------------
def frechet_distance(a: np.ndarray, b: np.ndarray, eps: float = 1e-6) -> float:
    """Fréchet distance between Gaussians fitted to the rows of a and b:
    |mu_a - mu_b|^2 + tr(Ca + Cb - 2 (Ca Cb)^(1/2))."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    if a.ndim == 1:
        a, b = a[:, None], b[:, None]
    if a.shape[1] != b.shape[1] or len(a) < 2 or len(b) < 2:
        raise ValueError(f"frechet_distance: need (n>=2, d) arrays of one width, got {a.shape}, {b.shape}")
    mu = a.mean(0) - b.mean(0)
    ca = np.atleast_2d(np.cov(a, rowvar=False))
    cb = np.atleast_2d(np.cov(b, rowvar=False))
    covmean, ok = _sqrtm_product(ca, cb)
    if not ok:
        # singular (few samples, constant dims): regularise both, scaled to the data
        off = eps * max(1.0, float(np.trace(ca) + np.trace(cb)) / (2 * len(ca))) * np.eye(len(ca))
        covmean, _ = _sqrtm_product(ca + off, cb + off)
    fd = float(mu @ mu + np.trace(ca) + np.trace(cb) - 2.0 * np.trace(covmean))
    return max(fd, 0.0)  # round-off can make identical sets give -1e-12


def _sqrtm_product(ca: np.ndarray, cb: np.ndarray) -> tuple[np.ndarray, bool]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s = scipy.linalg.sqrtm(ca @ cb)
    s = np.asarray(s)
    ok = bool(np.all(np.isfinite(s)))
    if ok and np.iscomplexobj(s):
        # sqrtm of a product of PSD matrices is real in exact arithmetic; a sizable imaginary
        # part means numerical trouble -> caller regularises
        ok = np.abs(s.imag).max() <= 1e-3 * max(1.0, np.abs(s.real).max())
        s = s.real
    return s, ok


# ---------------------------------------------------------------------------------------------
# classifier two-sample test
# ---------------------------------------------------------------------------------------------
def c2st(real: np.ndarray, fake: np.ndarray, seed: int = 0, *,
         real_labels: np.ndarray | None = None, fake_labels: np.ndarray | None = None,
         n_classes: int = 0, epochs: int = 60, test_fraction: float = 0.4,
         hidden: int = 128, patience: int = 6, lr: float = 1e-3, batch_size: int = 128,
         max_per_side: int = 5000) -> dict:
    """Train a classifier to tell real rows from fake ones; held-out accuracy (0.5 = the two
    samples look alike). Equal numbers of real and fake rows (per class when labels are given,
    so the label itself carries no signal and the test judges x given the class).

    The judge is a small MLP (2 x 128 ReLU, Adam, early stopping on a validation split; its
    loop is `judge.py`) on features standardised with the real training rows' statistics.
    Logistic regression would be too weak a judge: a linear boundary only sees mean shifts, and
    a generator that gets every
    mean right but every variance, skew or dependency wrong would pass it (N(0, I) against its
    own cube / 3, 10 dims, 3000 rows each: a linear judge ~0.5, this MLP ~0.87, Bayes 0.98).
    An MLP of this size sees those, yet fits in well under a second on a few thousand rows.

    Returns accuracy (overall), per-class accuracies keyed by class id (with labels) and counts.
    """
    from .judge import JudgeSettings, fit_and_predict  # late: TensorFlow

    rng = np.random.default_rng(seed)
    real = np.asarray(real, np.float32)
    fake = np.asarray(fake, np.float32)
    if real_labels is None:
        real_labels = np.zeros(len(real), np.int64)
        fake_labels = np.zeros(len(fake), np.int64)
        n_classes, use_labels = 1, False
    else:
        real_labels = np.asarray(real_labels, np.int64)
        fake_labels = np.asarray(fake_labels, np.int64)
        n_classes, use_labels = max(n_classes, int(real_labels.max()) + 1, int(fake_labels.max()) + 1), True
    # balanced per class: m_c rows from each side
    ri, fi, m_class = [], [], {}
    for c in range(n_classes):
        r_c = np.flatnonzero(real_labels == c)
        f_c = np.flatnonzero(fake_labels == c)
        m = m_class[c] = min(len(r_c), len(f_c))
        if m:
            ri.append(rng.choice(r_c, m, replace=False))
            fi.append(rng.choice(f_c, m, replace=False))
    if not ri:
        return {"accuracy": float("nan"), "n_per_side": 0, "per_class": {}}
    ri, fi = np.concatenate(ri), np.concatenate(fi)
    if len(ri) > max_per_side:  # cap the cost; pairs share a class, so balance is kept
        keep = np.sort(rng.choice(len(ri), max_per_side, replace=False))
        ri, fi = ri[keep], fi[keep]
        m_class = {c: int((real_labels[ri] == c).sum()) for c in m_class}
    m = len(ri)
    X = np.concatenate([real[ri], fake[fi]])
    Y = np.concatenate([np.ones(m, np.float32), np.zeros(m, np.float32)])
    L = np.concatenate([real_labels[ri], fake_labels[fi]])
    # split pairs together so train and test stay balanced
    perm = rng.permutation(m)
    n_test = max(1, int(round(test_fraction * m)))
    test_pairs, train_pairs = perm[:n_test], perm[n_test:]
    te = np.concatenate([test_pairs, test_pairs + m])
    tr = np.concatenate([train_pairs, train_pairs + m])
    if len(train_pairs) < 10:
        return {"accuracy": float("nan"), "n_per_side": int(m), "per_class": {}}
    mu = X[tr][Y[tr] == 1].mean(0)
    sd = X[tr][Y[tr] == 1].std(0)
    sd = np.where(sd > 1e-8, sd, 1.0)
    Z = np.clip((X - mu) / sd, -1e3, 1e3).astype(np.float32)  # clip: a wild fake must not blow up the fit
    if use_labels:
        Z = np.concatenate([Z, np.eye(n_classes, dtype=np.float32)[L]], axis=1)
    tr = tr[rng.permutation(len(tr))]

    s = [int(v) for v in rng.integers(1, 2**31 - 1, 3)]
    pred = fit_and_predict(Z[tr], Y[tr], Z[te], s, JudgeSettings(
        hidden=hidden, epochs=epochs, patience=patience, lr=lr, batch_size=batch_size))
    correct = pred == Y[te]
    res = {"accuracy": float(correct.mean()), "n_per_side": int(m), "n_test_per_side": int(n_test)}
    if use_labels:
        per = {}
        for c in range(n_classes):
            sel = L[te] == c
            k = int(sel.sum()) // 2
            if m_class[c] < MIN_CLASS_C2ST or k == 0:
                per[str(c)] = {"accuracy": None, "n_test_per_side": k, "skipped": "too few samples"}
            else:
                per[str(c)] = {"accuracy": float(correct[sel].mean()), "n_test_per_side": k}
        res["per_class"] = per
    return res


# ---------------------------------------------------------------------------------------------
# memorisation
# ---------------------------------------------------------------------------------------------
def nearest_distances(query: np.ndarray, ref: np.ndarray, block: int = 2048) -> np.ndarray:
    """Euclidean distance from each query row to its nearest row of ref (brute force, blocked)."""
    q = np.asarray(query, np.float64)
    r = np.asarray(ref, np.float64)
    r2 = np.einsum("ij,ij->i", r, r)
    out = np.empty(len(q))
    for i in range(0, len(q), block):
        qb = q[i:i + block]
        d2 = np.einsum("ij,ij->i", qb, qb)[:, None] + r2[None, :] - 2.0 * qb @ r.T
        out[i:i + block] = np.sqrt(np.maximum(d2.min(axis=1), 0.0))
    return out


def memorisation(train_x: np.ndarray, holdout_x: np.ndarray, fake_x: np.ndarray,
                 max_rows: int = 2000, seed: int = 0) -> dict:
    """Does the generator copy its training rows? The median distance from a generated row to
    its nearest training row, over the same for held-out real rows (features standardised by
    the training rows). About 1: generated rows sit as far from the training set as new real
    rows do; near 0: copies (which a C2ST cannot see: copies of real rows look real)."""
    rng = np.random.default_rng(seed)
    tr = np.asarray(train_x, np.float64)
    mu, sd = tr.mean(0), tr.std(0)
    sd = np.where(sd > 1e-8, sd, 1.0)

    def pick(a):
        a = (np.asarray(a, np.float64) - mu) / sd
        return a[rng.choice(len(a), min(max_rows, len(a)), replace=False)]
    d_fake = nearest_distances(pick(fake_x), (tr - mu) / sd)
    d_real = nearest_distances(pick(holdout_x), (tr - mu) / sd)
    med_real = float(np.median(d_real))
    return {"memorisation_ratio": float(np.median(d_fake)) / med_real if med_real > 0 else None,
            "nn_fake_median": float(np.median(d_fake)), "nn_holdout_median": med_real,
            "copies_fraction": float(np.mean(d_fake < 1e-6))}


# ---------------------------------------------------------------------------------------------
# the report
# ---------------------------------------------------------------------------------------------
def quality_report(real_holdout_x: np.ndarray, real_holdout_labels: np.ndarray,
                   fake_x: np.ndarray, fake_labels: np.ndarray, n_classes: int,
                   seed: int = 0, train_x: np.ndarray | None = None) -> dict:
    """Overall and per-class quality of fake samples against a held-out real set.

    fd_real_real: FD between two random halves of the hold-out (the noise floor at that sample
    size); fd_real_fake: FD between the first half and as many fake rows. c2st_accuracy: see
    ``c2st`` (label-aware, class-balanced); 0.5 = indistinguishable, 1.0 = trivially separable.
    With the generator's training rows, also ``memorisation``.
    """
    rng = np.random.default_rng(seed)
    rx = np.asarray(real_holdout_x, np.float64)
    rl = np.asarray(real_holdout_labels, np.int64)
    fx = np.asarray(fake_x, np.float64)
    fl = np.asarray(fake_labels, np.int64)

    def fd_pair(r: np.ndarray, f: np.ndarray) -> tuple[float | None, float | None, int]:
        r = r[rng.permutation(len(r))]
        h = len(r) // 2
        k = min(h, len(f))
        if k < 2:
            return None, None, k
        a, b = r[:k], r[h:h + k]
        fs = f[rng.choice(len(f), k, replace=False)]
        return frechet_distance(a, fs), frechet_distance(a, b), k

    fd_rf, fd_rr, k = fd_pair(rx, fx)
    c = c2st(rx, fx, seed=seed, real_labels=rl, fake_labels=fl, n_classes=n_classes)
    per_class = {}
    for cl in range(n_classes):
        r_c, f_c = rx[rl == cl], fx[fl == cl]
        entry: dict = {"n_real": int(len(r_c)), "n_fake": int(len(f_c))}
        if len(r_c) // 2 >= MIN_CLASS_FD and len(f_c) >= MIN_CLASS_FD:
            entry["fd_real_fake"], entry["fd_real_real"], entry["fd_n"] = fd_pair(r_c, f_c)
        else:
            entry["fd_real_fake"] = entry["fd_real_real"] = None
            entry["fd_skipped"] = "too few samples"
        pc = c.get("per_class", {}).get(str(cl))
        entry["c2st_accuracy"] = None if pc is None else pc["accuracy"]
        if pc is None or pc.get("skipped"):
            entry["c2st_skipped"] = "too few samples"
        per_class[str(cl)] = entry
    return {
        "n_real": int(len(rx)), "n_fake": int(len(fx)), "fd_n": int(k),
        "fd_real_fake": fd_rf, "fd_real_real": fd_rr,
        "fd_ratio": (fd_rf / fd_rr) if fd_rf is not None and fd_rr else None,
        "c2st_accuracy": c["accuracy"], "c2st_n_per_side": c["n_per_side"],
        **(memorisation(train_x, rx, fx, seed=seed) if train_x is not None else {}),
        "per_class": per_class,
    }


# ---------------------------------------------------------------------------------------------
# plots (Figure + Agg canvas: no pyplot global state, safe in workers)
# ---------------------------------------------------------------------------------------------
def plot_training(history: list[dict], path: str | os.PathLike) -> None:
    """Training metrics against step (whichever the kind logs); restarts as vertical lines.
    Left: losses; right: the discriminator's accuracy (GANs) or the log-scale loss (others)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4), dpi=100)
    FigureCanvasAgg(fig)
    ax1, ax2 = fig.subplots(1, 2)
    recs = [h for h in history if "restart" not in h]
    keys = [k for k in (recs[0] if recs else {}) if k not in ("step", "attempt", "d_acc")]
    offset, x = 0, []
    for h in history:  # a continuous x axis across attempts
        if "restart" in h:
            offset += h["step"]
            ax1.axvline(offset, color="red", ls=":", lw=1)
            ax2.axvline(offset, color="red", ls=":", lw=1)
        else:
            x.append(offset + h["step"])
    for key in keys:
        ys = [h.get(key) for h in recs]
        if any(v is not None for v in ys):
            ax1.plot(x, [np.nan if v is None else v for v in ys], label=key, lw=1)
    ax1.set_xlabel("step (all attempts)")
    ax1.set_title("losses")
    ax1.legend(fontsize=8)
    if recs and "d_acc" in recs[0]:
        ax2.plot(x, [np.nan if h.get("d_acc") is None else h["d_acc"] for h in recs], lw=1)
        ax2.axhline(0.5, color="gray", lw=0.5)
        ax2.set_ylim(-0.02, 1.02)
        ax2.set_title("discriminator accuracy")
    elif recs and "loss" in recs[0]:
        ax2.plot(x, [h["loss"] for h in recs], lw=1)
        ax2.set_yscale("symlog")
        ax2.set_title("loss (symlog)")
    ax2.set_xlabel("step (all attempts)")
    fig.tight_layout()
    fig.savefig(os.fspath(path))


def plot_histograms(real_x: np.ndarray, fake_x: np.ndarray, path: str | os.PathLike,
                    dims: list[int] | None = None, bins: int = 50) -> None:
    """Real vs fake histograms of a few feature dims (default: 8 spread over the width)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    real_x = np.asarray(real_x)
    fake_x = np.asarray(fake_x)
    if dims is None:
        dims = sorted(set(np.linspace(0, real_x.shape[1] - 1, min(8, real_x.shape[1])).astype(int).tolist()))
    cols = min(4, len(dims))
    rows = math.ceil(len(dims) / cols)
    fig = Figure(figsize=(3 * cols, 2.4 * rows), dpi=100)
    FigureCanvasAgg(fig)
    axes = np.atleast_1d(fig.subplots(rows, cols)).ravel()
    for ax, d in zip(axes, dims):
        r, f = real_x[:, d], fake_x[:, d]
        f = f[np.isfinite(f)]
        lo, hi = np.percentile(np.concatenate([r, f]) if len(f) else r, [0.5, 99.5])
        if hi <= lo:
            lo, hi = lo - 0.5, hi + 0.5
        edges = np.linspace(lo, hi, bins + 1)
        ax.hist(r, bins=edges, density=True, alpha=0.5, label="real")
        ax.hist(f, bins=edges, density=True, alpha=0.5, label="fake")
        ax.set_title(f"dim {d}", fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in axes[len(dims):]:
        ax.set_visible(False)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.fspath(path))


# ---------------------------------------------------------------------------------------------
# synthetic data
# ---------------------------------------------------------------------------------------------
def synthetic_features(n: int = 20_000, embed_dim: int = 64, n_classes: int = 6, seed: int = 0,
                       latent: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """A labelled set shaped like stage 2's features [e(s), e(s') - e(s)] (2 * embed_dim wide).

    A latent state z (latent dims, class-dependent mean) goes through a random ReLU net; e(s) is
    a linear read-out of its hidden layer (pre-activation, like the cut), with per-dim scales
    spanning 10x; a quarter of the dims are passed through a ReLU (sparse, skewed, exact zeros).
    s' is a small class-dependent (action-like) move of z, so deltas are small and structured.
    Classes are unbalanced (probabilities ~ 0.4 ... 0.03).
    """
    rng = np.random.default_rng(seed)
    p = np.array([0.40, 0.25, 0.15, 0.10, 0.07, 0.03][:n_classes] if n_classes <= 6
                 else np.ones(n_classes))
    p = p / p.sum()
    y = rng.choice(n_classes, n, p=p)
    class_mu = rng.normal(0, 1.0, (n_classes, latent))
    class_step = rng.normal(0, 0.15, (n_classes, latent))
    w1 = rng.normal(0, 1.0 / math.sqrt(latent), (latent, 96))
    b1 = rng.normal(0, 0.5, 96)
    w2 = rng.normal(0, 1.0 / math.sqrt(96), (96, embed_dim))
    b2 = rng.normal(0, 0.3, embed_dim)
    scale = np.exp(rng.uniform(math.log(0.3), math.log(3.0), embed_dim))
    sparse = rng.random(embed_dim) < 0.25

    def embed(z: np.ndarray) -> np.ndarray:
        h = np.maximum(z @ w1 + b1, 0.0)
        e = (h @ w2 + b2) * scale
        e[:, sparse] = np.maximum(e[:, sparse], 0.0)
        return e

    z = class_mu[y] + rng.normal(0, 1.0, (n, latent)) * np.linspace(0.5, 1.5, latent)
    z_next = z + class_step[y] + rng.normal(0, 0.05, (n, latent))
    e, e_next = embed(z), embed(z_next)
    return np.concatenate([e, e_next - e], axis=1).astype(np.float32), y.astype(np.int32)
