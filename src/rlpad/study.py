"""A study's statistics: independent agents are the unit of analysis (Agarwal et al. 2021).

Inputs are per-agent numbers: each agent's cell means (the mean over its trials of their mean
episode scores), its own score and a uniform-random policy's on the same evaluation episodes,
and its sanity refit's score on separate episodes. Outputs are per cell: the mean lift over
agents against each agent's own control (same n_real, no padding) with a paired Student-t CI
and a bootstrap CI over agents, the interquartile mean (IQM) of normalised scores and the
probability of improvement as `rliable` defines them, the fraction of agents whose lift is
positive, and a verdict. Pure numpy/scipy.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

SANITY_RECOVERY = 0.9  # the refit on all real data must reach this normalised score
ALPHA = 0.05
POWER = 0.8
RANDOM_ALPHA = 0.01  # an agent must beat the random policy at this level (one-sided)


def normalised(score: float, random: float, agent: float) -> float:
    """(score - random) / (agent - random): 0 = the random policy, 1 = the agent itself.
    Right for negative, positive and mixed returns as long as the agent beats random."""
    gap = agent - random
    return float("nan") if gap <= 0 else (score - random) / gap


def beats_random(agent_returns: Sequence[float], random_returns: Sequence[float],
                 alpha: float = RANDOM_ALPHA) -> tuple[bool, str]:
    """Does the agent clearly beat the uniform-random policy on the same episodes?
    One-sided Mann-Whitney U at `alpha` (robust to the constant returns a deterministic agent
    gives) and a positive mean gap. Returns (verdict, the reason in words)."""
    a, r = np.asarray(agent_returns, float), np.asarray(random_returns, float)
    gap = float(a.mean() - r.mean())
    if gap <= 0:
        return False, f"agent {a.mean():.4g} does not score above random {r.mean():.4g}"
    if np.ptp(np.concatenate([a, r])) == 0:
        return False, "agent and random score the same on every episode"
    p = float(sps.mannwhitneyu(a, r, alternative="greater").pvalue)
    if p >= alpha:
        return False, (f"agent {a.mean():.4g} vs random {r.mean():.4g}: not a clear margin "
                       f"(one-sided Mann-Whitney p = {p:.2g} >= {alpha})")
    return True, f"agent {a.mean():.4g} vs random {r.mean():.4g} (Mann-Whitney p = {p:.2g})"


def iqm(x: Sequence[float]) -> float:
    """Interquartile mean: the mean of the middle 50 % (rliable: scipy's trim_mean at 0.25)."""
    a = np.asarray(x, float)
    return float(sps.trim_mean(a, 0.25)) if a.size else float("nan")


def probability_of_improvement(x: Sequence[float], y: Sequence[float]) -> float:
    """P(X > Y) + P(X = Y) / 2 over all pairs of runs (rliable's, for one task: the
    Mann-Whitney U statistic over n x m)."""
    a, b = np.asarray(x, float), np.asarray(y, float)
    if not a.size or not b.size:
        return float("nan")
    diff = a[:, None] - b[None, :]
    return float(((diff > 0).sum() + 0.5 * (diff == 0).sum()) / diff.size)


def bootstrap_ci(values: Sequence[float], strata: Sequence | None = None, reps: int = 10_000,
                 level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean over agents; with `strata` (e.g. the game of
    each agent) agents are resampled within their stratum and the strata weighted by size."""
    v = np.asarray(values, float)
    if v.size < 2:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    groups = [np.flatnonzero(np.asarray(strata) == s) for s in dict.fromkeys(strata)] \
        if strata is not None else [np.arange(v.size)]
    means = np.zeros(reps)
    for g in groups:
        pick = g[rng.integers(0, g.size, size=(reps, g.size))]
        means += v[pick].sum(axis=1)
    means /= v.size
    lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def paired_t(lifts: Sequence[float], level: float = 0.95) -> dict:
    """Mean lift over agents, its Student-t CI and two-sided p (H0: mean lift = 0)."""
    d = np.asarray(lifts, float)
    k = d.size
    out = {"mean": float(d.mean()) if k else float("nan"), "lo": float("nan"),
           "hi": float("nan"), "p": float("nan"), "sd": float("nan"), "k": int(k)}
    if k < 2:
        return out
    sd = float(d.std(ddof=1))
    out["sd"] = sd
    if sd == 0:
        out.update(lo=out["mean"], hi=out["mean"], p=0.0 if out["mean"] != 0 else 1.0)
        return out
    half = float(sps.t.ppf(0.5 + level / 2, k - 1)) * sd / math.sqrt(k)
    t = out["mean"] / (sd / math.sqrt(k))
    out.update(lo=out["mean"] - half, hi=out["mean"] + half,
               p=float(2 * sps.t.sf(abs(t), k - 1)))
    return out


def min_detectable_lift(sd: float, k: int, alpha: float = ALPHA, power: float = POWER) -> float:
    """The smallest true mean lift a two-sided paired t test over k agents detects with
    probability `power`, for the observed spread sd of agent lifts (normal approximation
    with t quantiles: (t_{1-a/2} + t_{power}) sd / sqrt(k))."""
    if k < 2 or not np.isfinite(sd):
        return float("nan")
    df = k - 1
    return float((sps.t.ppf(1 - alpha / 2, df) + sps.t.ppf(power, df)) * sd / math.sqrt(k))


def _sign(lo: float, hi: float) -> int:
    return 1 if lo > 0 else -1 if hi < 0 else 0


def verdict(p_holm: float, t_lo: float, t_hi: float, b_lo: float, b_hi: float) -> str:
    """lift / harm by the Holm-adjusted paired t test at ALPHA; `uncertain` where the t and
    bootstrap CIs disagree on the sign; else `no detectable effect`."""
    if not (np.isfinite(t_lo) and np.isfinite(b_lo)):
        return "too few agents"
    if _sign(t_lo, t_hi) != _sign(b_lo, b_hi):
        return "uncertain"
    if p_holm < ALPHA:
        return "lift" if t_lo > 0 else "harm" if t_hi < 0 else "uncertain"
    return "no detectable effect"


@dataclass(frozen=True)
class AgentRef:
    """One agent's reference scores: on the cells' evaluation episodes (normalisation) and
    on the separate sanity episodes (sanity judgement, exclusion)."""

    seed: int
    game: str
    agent: float  # the stage-1 agent's mean on the cells' episodes
    random: float  # the uniform-random policy's mean on the same episodes
    beats_random: bool
    random_reason: str
    sanity_norm: float  # refit on all real data, normalised, on the sanity episodes

    @property
    def sanity_holds(self) -> bool:
        return bool(self.beats_random and np.isfinite(self.sanity_norm)
                    and self.sanity_norm >= SANITY_RECOVERY)


def study_rows(cell_means: Mapping[tuple[int, str, int, int], float],
               refs: Mapping[int, AgentRef], subset: str = "all") -> list[dict]:
    """Per (mode, n_real, n_fake) padded cell: agent-level statistics against the control
    (mode none, same n_real). cell_means: (agent seed, mode, configured n_real, n_fake) ->
    that agent's mean over its trials. subset: 'all' agents that beat random, or 'sanity'
    (those whose sanity holds too). Holm's correction runs across the cells of one game."""
    use = {s: r for s, r in refs.items() if r.beats_random and (subset == "all" or r.sanity_holds)}
    cells = sorted({(m, n, f) for (_, m, n, f) in cell_means if m != "none"},
                   key=lambda c: (c[1] == 0, c[1], c[0], c[2]))
    rows = []
    for mode, n_real, n_fake in cells:
        row = _lift_row(cell_means, use, (mode, n_real, n_fake), ("none", n_real, 0))
        rows.append({"mode": mode, "n_real": n_real, "n_fake": n_fake, "subset": subset, **row})
    for game in sorted({g for r in rows for g in r["games"]}):
        mine = [r for r in rows if r["games"] == [game]]
        for r, p in zip(mine, _holm([r["p"] for r in mine])):
            r["p_holm"] = p
    for r in rows:
        r.setdefault("p_holm", r["p"])  # pooled over games: no within-game family
        r["verdict"] = verdict(r["p_holm"], r["lift_lo"], r["lift_hi"], r["boot_lo"], r["boot_hi"])
    return rows


def _lift_row(cell_means: Mapping[tuple[int, str, int, int], float], use: Mapping[int, AgentRef],
              treated: tuple[str, int, int], control: tuple[str, int, int]) -> dict:
    """Agent-level statistics of treated - control (cells as (mode, n_real, n_fake)) over the
    agents in `use` that have both cells."""
    seeds = [s for s in use if (s, *treated) in cell_means and (s, *control) in cell_means]
    tr = np.array([cell_means[(s, *treated)] for s in seeds])
    ctl = np.array([cell_means[(s, *control)] for s in seeds])
    norm = lambda v: np.array([normalised(x, use[s].random, use[s].agent)  # noqa: E731
                               for x, s in zip(v, seeds)])
    lifts = tr - ctl
    t = paired_t(lifts)
    games = [use[s].game for s in seeds]
    b_lo, b_hi = bootstrap_ci(lifts, strata=games if len(set(games)) > 1 else None)
    return {
        "agents": seeds, "k": len(seeds), "games": sorted(set(games)),
        "lift": t["mean"], "lift_lo": t["lo"], "lift_hi": t["hi"], "p": t["p"],
        "boot_lo": b_lo, "boot_hi": b_hi,
        "lift_norm": float(np.mean(norm(tr) - norm(ctl))) if seeds else float("nan"),
        "iqm": iqm(norm(tr)), "iqm_control": iqm(norm(ctl)),
        "prob_improvement": probability_of_improvement(norm(tr), norm(ctl)),
        "frac_positive": float(np.mean(lifts > 0)) if seeds else float("nan"),
        "mde": min_detectable_lift(t["sd"], len(seeds)),
        "agent_lifts": {int(s): float(v) for s, v in zip(seeds, lifts)},
    }


def primary_rows(cell_means: Mapping[tuple[int, str, int, int], float],
                 refs: Mapping[int, AgentRef], mode: str, controls: Sequence[str],
                 n_real: int, n_fake: int) -> list[dict]:
    """The pre-registered comparison: `mode` against each control at one (n_real, n_fake),
    over the agents that beat random; Holm across these tests only (a control mode "none"
    is its unpadded cell, n_fake 0)."""
    use = {s: r for s, r in refs.items() if r.beats_random}
    rows = []
    for c in controls:
        row = _lift_row(cell_means, use, (mode, n_real, n_fake),
                        (c, n_real, 0 if c == "none" else n_fake))
        rows.append({"mode": mode, "control": c, "n_real": n_real, "n_fake": n_fake, **row})
    for r, p in zip(rows, _holm([r["p"] for r in rows])):
        r["p_holm"] = p
        r["verdict"] = verdict(p, r["lift_lo"], r["lift_hi"], r["boot_lo"], r["boot_hi"])
    return rows


def format_primary(rows: Sequence[dict]) -> str:
    """The primary comparison's lines, printed above the exploratory table."""
    if not rows:
        return ""
    r0 = rows[0]
    out = [f"PRIMARY (pre-registered in the profile): {r0['mode']} at n_real {r0['n_real']:,}, "
           f"n_fake {r0['n_fake']:,}; Holm across its {len(rows)} control(s) only"]
    for r in rows:
        ci = f"[{_f(r['lift_lo'], signed=True)}, {_f(r['lift_hi'], signed=True)}]"
        text = r["verdict"] + (f" (MDE {_f(r['mde'])})" if r["verdict"] == "no detectable effect"
                               else "")
        out.append(f"  vs {r['control']:<22} {r['k']:>3} agents  lift {_f(r['lift'], signed=True):>8} "
                   f"95% CI {ci:>17}  p Holm {_f(r['p_holm'], '.3f')}  "
                   f"P(impr) {_f(r['prob_improvement'], '.2f')}  {text}")
    return "\n".join(out)


def _holm(p: Sequence[float]) -> list[float]:
    from .stats import holm

    return holm(p)


def _f(x: float, fmt: str = ".1f", signed: bool = False) -> str:
    if x is None or not np.isfinite(x):
        return "-"
    return format(x, ("+" if signed else "") + fmt)


def format_verdicts(rows: Sequence[dict], refs: Mapping[int, AgentRef], title: str) -> str:
    """The study table: one line per cell and subset, then the per-agent references."""
    mw = max([12] + [len(r["mode"]) for r in rows])  # kinds make modes long: constrained:cvae
    head = (f"{'n_real':>7} {'mode':<{mw}} {'n_fake':>6} {'agents':>6} {'lift':>8} "
            f"{'95% CI (t)':>17} {'95% CI (boot)':>17} {'p Holm':>7} {'IQM':>5} {'IQM ctl':>7} "
            f"{'P(impr)':>7} {'>0':>4} {'MDE':>7}  verdict")
    out = [title, head, "-" * len(head)]
    for subset, label in (("all", "all agents that beat random"),
                          ("sanity", "agents whose sanity holds")):
        mine = [r for r in rows if r["subset"] == subset]
        n = len({s for r in mine for s in r["agents"]})
        out.append(f"-- {label} ({n} of {len(refs)}):")
        for r in mine:
            nr = "all" if r["n_real"] == 0 else f"{r['n_real']:,}"
            ci_t = f"[{_f(r['lift_lo'], signed=True)}, {_f(r['lift_hi'], signed=True)}]"
            ci_b = f"[{_f(r['boot_lo'], signed=True)}, {_f(r['boot_hi'], signed=True)}]"
            verdict_text = r["verdict"]
            if verdict_text == "no detectable effect":
                verdict_text += f" (MDE {_f(r['mde'])})"
            out.append(f"{nr:>7} {r['mode']:<{mw}} {r['n_fake']:>6,} {r['k']:>6} "
                       f"{_f(r['lift'], signed=True):>8} {ci_t:>17} {ci_b:>17} "
                       f"{_f(r['p_holm'], '.3f'):>7} {_f(r['iqm'], '.2f'):>5} "
                       f"{_f(r['iqm_control'], '.2f'):>7} {_f(r['prob_improvement'], '.2f'):>7} "
                       f"{_f(r['frac_positive'], '.0%'):>4} {_f(r['mde']):>7}  {verdict_text}")
    out.append("")
    out.append("agents (scores on the cells' episodes; sanity on separate episodes):")
    for s, ref in sorted(refs.items()):
        sanity = ("holds" if ref.sanity_holds else "FAILS") if ref.beats_random else "excluded"
        out.append(f"  seed {s:>4} {ref.game}: agent {ref.agent:.4g}, random {ref.random:.4g}; "
                   f"sanity refit {_f(ref.sanity_norm, '.2f')} normalised: {sanity}"
                   + ("" if ref.beats_random else f" ({ref.random_reason})"))
    return "\n".join(out)


def plot_lifts(rows: Sequence[dict], refs: Mapping[int, AgentRef], path: str, title: str) -> None:
    """Lift per cell with its agent-level t CI; each agent a dot, sanity failures as crosses."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    mine = [r for r in rows if r["subset"] == "all"]
    fig = Figure(figsize=(max(6, 1.1 * len(mine) + 2), 4.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(111)
    for i, r in enumerate(mine):
        if np.isfinite(r["lift_lo"]):
            ax.errorbar([i], [r["lift"]], yerr=[[r["lift"] - r["lift_lo"]], [r["lift_hi"] - r["lift"]]],
                        fmt="s", color="black", capsize=5, zorder=3)
        for j, (s, v) in enumerate(sorted(r["agent_lifts"].items())):
            x = i + 0.25 + 0.03 * (j - len(r["agent_lifts"]) / 2)
            ok = refs[s].sanity_holds
            ax.plot([x], [v], "o" if ok else "x", color="tab:blue" if ok else "tab:red", alpha=0.8)
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xticks(range(len(mine)))
    ax.set_xticklabels([f"{r['mode']}\nn_real {'all' if r['n_real'] == 0 else r['n_real']}"
                        for r in mine], fontsize=8)
    ax.set_ylabel("lift over the agent's own control (score)")
    ax.set_title(title + "\n(square: mean over agents, 95% t CI; o: agent, x: sanity fails)",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
