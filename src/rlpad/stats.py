"""Win statistics for stage 4: confidence intervals, lift tests, a table and a plot.

Pure numpy/scipy/matplotlib. Episodes within one trial share one refit head, so they
are not independent: the unit of analysis for means, CIs and lift tests is the trial
(the mean score of its episodes). A cell with a single trial falls back to episodes
and says so (``unit: "episode"``).
"""
from __future__ import annotations

import math
import warnings
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats as sps

MODE_ORDER = {"none": 0, "simple": 1, "constrained": 2, "resample": 3}
LIFT_KEYS = ("lift", "lift_lo", "lift_hi", "p_welch", "p_mannwhitney", "p_holm")
NAN = float("nan")


def _arr(x: Iterable[float]) -> np.ndarray:
    return np.asarray(list(x) if not isinstance(x, np.ndarray) else x, dtype=float).ravel()


def mean_ci(x: Iterable[float], level: float = 0.95) -> tuple[float, float, float]:
    """Mean and Student-t interval; (x, nan, nan) for one value, all nan for none."""
    a = _arr(x)
    n = a.size
    if n == 0:
        return NAN, NAN, NAN
    m = float(a.mean())
    if n == 1:
        return m, NAN, NAN
    half = float(sps.t.ppf(0.5 + level / 2, n - 1) * a.std(ddof=1) / math.sqrt(n))
    return m, m - half, m + half


def wilson_interval(wins: int, n: int, level: float = 0.95) -> tuple[float, float, float]:
    """Win rate and Wilson score interval (sane at 0/n and n/n, unlike Wald)."""
    if n <= 0:
        return NAN, NAN, NAN
    p = wins / n
    z = float(sps.norm.ppf(0.5 + level / 2))
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return p, max(0.0, centre - half), min(1.0, centre + half)


def compare(treated: Iterable[float], control: Iterable[float], level: float = 0.95) -> dict[str, float]:
    """Lift = mean(treated) - mean(control) with a Welch CI, Welch t-test and Mann-Whitney U.

    Degenerate inputs give nan rather than exceptions: Welch needs n >= 2 on both sides
    and a non-zero standard error; Mann-Whitney needs n >= 1 and non-constant pooled data.
    """
    t_, c = _arr(treated), _arr(control)
    n1, n2 = t_.size, c.size
    out = {"lift": NAN, "lift_lo": NAN, "lift_hi": NAN, "t": NAN, "df": NAN,
           "p_welch": NAN, "p_mannwhitney": NAN, "n_treated": n1, "n_control": n2}
    if n1 == 0 or n2 == 0:
        return out
    out["lift"] = float(t_.mean() - c.mean())
    if n1 >= 2 and n2 >= 2:
        v1, v2 = t_.var(ddof=1) / n1, c.var(ddof=1) / n2
        se2 = v1 + v2
        if se2 > 0:
            df = se2 ** 2 / (v1 ** 2 / (n1 - 1) + v2 ** 2 / (n2 - 1))  # Welch-Satterthwaite
            half = float(sps.t.ppf(0.5 + level / 2, df) * math.sqrt(se2))
            with warnings.catch_warnings():  # near-identical samples: scipy warns, p is still valid
                warnings.simplefilter("ignore", RuntimeWarning)
                res = sps.ttest_ind(t_, c, equal_var=False)
            out.update(lift_lo=out["lift"] - half, lift_hi=out["lift"] + half, df=float(df),
                       t=float(res.statistic), p_welch=float(res.pvalue))
    if np.ptp(np.concatenate([t_, c])) > 0:
        with warnings.catch_warnings():  # small-sample/ties warnings are noise here
            warnings.simplefilter("ignore")
            out["p_mannwhitney"] = float(sps.mannwhitneyu(t_, c, alternative="two-sided").pvalue)
    return out


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-Bonferroni step-down adjusted p-values (monotone, capped at 1; nan passes through)."""
    p = np.asarray([NAN if v is None else v for v in pvalues], dtype=float)
    out = np.full(p.shape, NAN)
    idx = np.flatnonzero(~np.isnan(p))
    order = idx[np.argsort(p[idx], kind="stable")]
    m, running = order.size, 0.0
    for rank, i in enumerate(order):
        running = max(running, (m - rank) * p[i])  # keep adjusted values monotone
        out[i] = min(1.0, running)
    return [float(v) for v in out]


def _mode_key(mode: str) -> tuple[int, str]:
    return MODE_ORDER.get(mode.partition(":")[0], len(MODE_ORDER)), mode


def _cell_key(cell: tuple[str, int, int]) -> tuple:
    mode, r, f = cell
    return (r, *_mode_key(mode), f)


def summarize(episodes: Iterable[Mapping[str, Any]], win_threshold: float) -> list[dict[str, Any]]:
    """One row per (mode, n_real, n_fake) cell: trial-level mean CI, win rate, lift vs control."""
    cells: dict[tuple[str, int, int], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for row in episodes:
        key = (str(row["mode"]), int(row["n_real"]), int(row["n_fake"]))
        cells[key][str(row["trial_id"])].append(float(row["score"]))

    keys = sorted(cells, key=_cell_key)
    units: dict[tuple[str, int, int], tuple[str, np.ndarray, np.ndarray]] = {}
    out: list[dict[str, Any]] = []
    for key in keys:
        trials = cells[key]
        eps = np.concatenate([np.asarray(v) for v in trials.values()])
        trial_means = np.asarray([np.mean(v) for v in trials.values()])
        unit = "trial" if trial_means.size >= 2 else "episode"
        units[key] = (unit, trial_means, eps)
        mean, lo, hi = mean_ci(trial_means if unit == "trial" else eps)
        wins = int(np.sum(eps >= win_threshold))
        rate, wlo, whi = wilson_interval(wins, eps.size)
        out.append({"mode": key[0], "n_real": key[1], "n_fake": key[2],
                    "n_trials": int(trial_means.size), "n_episodes": int(eps.size), "unit": unit,
                    "mean": mean, "ci_lo": lo, "ci_hi": hi, "median": float(np.median(eps)),
                    "win_threshold": float(win_threshold), "wins": wins,
                    "win_rate": rate, "win_lo": wlo, "win_hi": whi,
                    "control_mode": None, "lift_unit": None, **dict.fromkeys(LIFT_KEYS)})

    tested: list[dict[str, Any]] = []
    for row, key in zip(out, keys):
        mode, r, f = key
        if f == 0:
            continue  # n_fake == 0 cells are controls (or have nothing to be compared with)
        ctrl = ("none", r, 0) if ("none", r, 0) in cells else next(
            (k for k in keys if k[1] == r and k[2] == 0), None)
        if ctrl is None:
            continue
        (u1, tm1, ep1), (u2, tm2, ep2) = units[key], units[ctrl]
        # Compare trials with trials; fall back to episodes only if either side has one trial.
        both_trial = u1 == u2 == "trial"
        res = compare(tm1, tm2) if both_trial else compare(ep1, ep2)
        row.update(control_mode=ctrl[0], lift_unit="trial" if both_trial else "episode",
                   **{k: res[k] for k in LIFT_KEYS if k in res})
        tested.append(row)
    for row, p in zip(tested, holm([r["p_welch"] for r in tested])):
        row["p_holm"] = p
    return out


def _num(x: Any, signed: bool = False) -> str:
    """About 3 significant digits without scientific notation; nan/None -> '—'."""
    if x is None or not math.isfinite(x):
        return "—"
    ax = abs(x)
    s = f"{x:.0f}" if ax >= 100 else f"{x:.1f}" if ax >= 10 else f"{x:.2f}"
    return ("+" + s) if signed and x >= 0 else s


def _p(x: Any) -> str:
    if x is None or not math.isfinite(x):
        return "—"
    return "<0.001" if x < 0.001 else f"{x:.3f}"


def format_table(summary: Sequence[Mapping[str, Any]], title: str = "") -> str:
    """Fixed-width terminal table, one row per cell, with a footnote on units and tests."""
    head = ["mode", "n_real", "n_fake", "trials", "episodes", "mean ± 95% CI", "median",
            "win rate [95% CI]", "lift [95% CI]", "p (Welch)", "p (MW)", "p (Holm)"]
    rows = []
    for s in summary:
        s = {k: (NAN if v is None and k not in LIFT_KEYS else v) for k, v in s.items()}  # jsonable input
        half = s["ci_hi"] - s["mean"]
        win = ("—" if not math.isfinite(s["win_rate"]) else
               f"{100 * s['win_rate']:.0f}% [{100 * s['win_lo']:.0f}–{100 * s['win_hi']:.0f}]")
        lift = ("—" if s["lift"] is None else
                f"{_num(s['lift'], True)} [{_num(s['lift_lo'])}, {_num(s['lift_hi'])}]")
        trials = f"{s['n_trials']}{'*' if s['unit'] == 'episode' else ''}"
        rows.append([s["mode"], str(s["n_real"]), str(s["n_fake"]), trials, str(s["n_episodes"]),
                     f"{_num(s['mean'])} ± {_num(half)}", _num(s["median"]), win, lift,
                     _p(s["p_welch"]), _p(s["p_mannwhitney"]), _p(s["p_holm"])])
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]

    def line(cells: list[str]) -> str:  # mode left-aligned, numbers right-aligned
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    thr = summary[0]["win_threshold"] if summary else NAN
    n_tests = sum(s["lift"] is not None for s in summary)
    out = [title] if title else []
    out += [line(head), "  ".join("-" * w for w in widths), *map(line, rows)]
    out.append(f"Unit of analysis: the trial (mean score of its episodes, which share one refit head); "
               f"* = one trial, episodes used instead. Mean CI: Student t. Win = score ≥ {_num(thr)}, "
               f"Wilson CI over episodes. Lift vs control (mode 'none' if present, same n_real, n_fake 0): Welch CI and "
               f"t-test, Mann-Whitney U (both two-sided); Holm across {n_tests} tests on p (Welch).")
    return "\n".join(out)


def plot_summary(summary: Sequence[Mapping[str, Any]], path: str | Path, title: str = "") -> None:
    """Mean score vs n_real, one line per (mode, n_fake) with a 95% CI band, saved as PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import NullFormatter

    reals = sorted({int(s["n_real"]) for s in summary})
    pos_vals = [r for r in reals if r > 0]
    log = bool(pos_vals) and max(pos_vals) / min(pos_vals) > 10
    # n_real == 0 means "all real data": draw it at the right end, labelled "all".
    if 0 in reals:
        if not pos_vals:
            all_x = 1.0
        elif log:
            all_x = max(pos_vals) * 3.0
        else:
            all_x = max(pos_vals) + max((max(pos_vals) - min(pos_vals)) / max(len(pos_vals) - 1, 1), 1)
    xpos = {r: (all_x if r == 0 else float(r)) for r in reals}

    fig = Figure(figsize=(7, 4.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    lines: dict[tuple[str, int], list[Mapping[str, Any]]] = defaultdict(list)
    for s in summary:
        lines[(s["mode"], int(s["n_fake"]))].append(s)
    for (mode, f), rows in sorted(lines.items(), key=lambda kv: (*_mode_key(kv[0][0]), kv[0][1])):
        rows = sorted(rows, key=lambda s: xpos[int(s["n_real"])])
        x = [xpos[int(s["n_real"])] for s in rows]
        y = np.asarray([s["mean"] for s in rows], dtype=float)
        lo = np.asarray([NAN if s["ci_lo"] is None else s["ci_lo"] for s in rows], dtype=float)
        hi = np.asarray([NAN if s["ci_hi"] is None else s["ci_hi"] for s in rows], dtype=float)
        (ln,) = ax.plot(x, y, marker="o", label=f"{mode}, n_fake={f}")
        ax.fill_between(x, lo, hi, color=ln.get_color(), alpha=0.2, linewidth=0)
    if log:
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
    ticks = [xpos[r] for r in reals]
    ax.set_xticks(ticks, ["all" if r == 0 else f"{r:,}" for r in reals])
    ax.set_xlabel("real transitions (n_real)")
    ax.set_ylabel("mean score (95% CI)")
    if title:
        ax.set_title(title)
    if lines:
        ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=100)


def to_jsonable(summary: Any) -> Any:
    """Copy with nan/inf -> None and numpy scalars -> Python, for json.dumps(allow_nan=False)."""
    if isinstance(summary, Mapping):
        return {k: to_jsonable(v) for k, v in summary.items()}
    if isinstance(summary, (list, tuple)):
        return [to_jsonable(v) for v in summary]
    if isinstance(summary, np.generic):
        summary = summary.item()
    if isinstance(summary, float) and not math.isfinite(summary):
        return None
    return summary
