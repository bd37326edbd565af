"""Agent-level statistics of a study (rlpad.study) against known values and scipy."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from rlpad import study
from rlpad.study import AgentRef


# ---- normalisation, exclusion, the sanity rule -------------------------------------------------
@pytest.mark.parametrize("score,random,agent,want", [
    (-80.1, -200.0, -86.0, 119.9 / 114.0),   # -1 per step until success (a full recovery)
    (450.0, 20.0, 500.0, 430.0 / 480.0),     # positive returns (CartPole)
    (-25.0, -100.0, 50.0, 0.5),              # mixed signs (LunarLander-like)
    (-100.0, -100.0, 50.0, 0.0),             # scoring as random is 0
    (50.0, -100.0, 50.0, 1.0),               # scoring as the agent is 1
])
def test_normalised_for_negative_positive_and_mixed_returns(score, random, agent, want):
    assert study.normalised(score, random, agent) == pytest.approx(want)


def test_normalised_is_undefined_when_the_agent_does_not_beat_random():
    assert math.isnan(study.normalised(10.0, 20.0, 15.0))
    assert math.isnan(study.normalised(10.0, 20.0, 20.0))


def test_sanity_rule_reads_negative_scores_right():
    # The report of the studies issue: -80.1 against an agent's -86.0 is a full recovery.
    norm = study.normalised(-80.1, -200.0, -86.0)
    ref = AgentRef(1, "g", -86.0, -200.0, True, "", norm)
    assert ref.sanity_holds
    assert not AgentRef(1, "g", -86.0, -200.0, True, "", study.normalised(-100, -200, -86)).sanity_holds
    # an excluded agent never "holds"
    assert not AgentRef(1, "g", -86.0, -200.0, False, "x", 1.0).sanity_holds


def test_beats_random_needs_a_clear_margin():
    rng = np.random.default_rng(0)
    rand = rng.normal(-200, 20, 30)
    ok, why = study.beats_random(rng.normal(-86, 5, 30), rand)
    assert ok and "Mann-Whitney" in why
    ok, why = study.beats_random(rng.normal(-198, 20, 30), rand)   # within noise
    assert not ok and "not a clear margin" in why
    ok, why = study.beats_random(rng.normal(-300, 5, 30), rand)    # worse than random
    assert not ok and "does not score above random" in why
    ok, _ = study.beats_random([500.0] * 30, [22.0] * 30)          # constant returns
    assert ok
    ok, why = study.beats_random([9.0] * 5, [9.0] * 5)
    assert not ok


# ---- rliable's aggregates ----------------------------------------------------------------------
def test_iqm_is_the_mean_of_the_middle_half():
    assert study.iqm([1, 2, 3, 4, 5, 6, 7, 8]) == pytest.approx(4.5)  # mean of 3, 4, 5, 6
    x = np.random.default_rng(1).normal(size=40)
    assert study.iqm(x) == pytest.approx(float(sps.trim_mean(x, 0.25)))
    assert study.iqm([1, 2, 3, 4, 100]) < np.mean([1, 2, 3, 4, 100])  # robust to the outlier


def test_probability_of_improvement_counts_pairs_and_half_ties():
    assert study.probability_of_improvement([1, 2, 3], [2, 2, 2]) == pytest.approx(0.5)
    assert study.probability_of_improvement([3, 4], [1, 2]) == 1.0
    assert study.probability_of_improvement([1, 2], [3, 4]) == 0.0
    x, y = np.random.default_rng(2).normal(size=(2, 15))
    u = sps.mannwhitneyu(x, y).statistic  # U of x: pairs x > y (+ ties / 2)
    assert study.probability_of_improvement(x, y) == pytest.approx(u / (15 * 15))


def test_bootstrap_ci_matches_scipy_and_stratifies():
    x = np.random.default_rng(3).normal(2.0, 1.0, 12)
    lo, hi = study.bootstrap_ci(x, reps=40_000, seed=1)
    ref = sps.bootstrap((x,), np.mean, n_resamples=40_000, method="percentile",
                        random_state=2).confidence_interval
    assert lo == pytest.approx(ref.low, abs=0.05) and hi == pytest.approx(ref.high, abs=0.05)
    # resampled within strata: two constant games keep their weights, so the mean is fixed
    v = [0.0, 0.0, 0.0, 10.0, 10.0, 10.0]
    assert study.bootstrap_ci(v, strata=["a"] * 3 + ["b"] * 3) == pytest.approx((5.0, 5.0))
    lo, hi = study.bootstrap_ci(v)
    assert lo < 5.0 < hi


def test_paired_t_matches_scipy():
    d = np.array([1.5, -0.3, 2.2, 0.9, 1.1, 0.4])
    t = study.paired_t(d)
    res = sps.ttest_1samp(d, 0.0)
    ci = res.confidence_interval(0.95)
    assert t["p"] == pytest.approx(res.pvalue)
    assert (t["lo"], t["hi"]) == pytest.approx((ci.low, ci.high))
    assert t["mean"] == pytest.approx(d.mean()) and t["k"] == 6


def test_minimum_detectable_lift_has_80_percent_power():
    k, sd = 10, 3.0
    mde = study.min_detectable_lift(sd, k)
    df = k - 1
    assert mde == pytest.approx((sps.t.ppf(0.975, df) + sps.t.ppf(0.8, df)) * sd / math.sqrt(k))
    # exact power of the two-sided paired t test at that true lift (noncentral t)
    crit = sps.t.ppf(0.975, df)
    ncp = mde / (sd / math.sqrt(k))
    power = sps.nct.sf(crit, df, ncp) + sps.nct.cdf(-crit, df, ncp)
    assert power == pytest.approx(0.8, abs=0.03)
    assert study.min_detectable_lift(sd, 40) < mde  # more agents detect smaller lifts


@pytest.mark.parametrize("p,t,b,want", [
    (0.01, (1.0, 3.0), (1.2, 2.8), "lift"),
    (0.01, (-3.0, -1.0), (-2.9, -1.1), "harm"),
    (0.30, (-1.0, 2.0), (-0.8, 1.9), "no detectable effect"),
    (0.01, (0.2, 3.0), (-0.1, 2.9), "uncertain"),       # t says lift, bootstrap spans 0
    (0.20, (-0.5, 2.0), (0.1, 1.9), "uncertain"),       # bootstrap says lift, t spans 0
    (0.08, (0.1, 2.0), (0.2, 1.9), "no detectable effect"),  # CIs agree, Holm keeps it
])
def test_verdict_rule(p, t, b, want):
    assert study.verdict(p, *t, *b) == want


# ---- a whole study table -----------------------------------------------------------------------
def _refs(n: int, excluded=(), failing=()) -> dict[int, AgentRef]:
    return {s: AgentRef(s, "CartPole-v1", 500.0, 20.0, s not in excluded, "why",
                        0.5 if s in failing else 0.97) for s in range(1, n + 1)}


def test_study_rows_pair_each_agent_with_its_own_control():
    refs = _refs(6, excluded={6}, failing={5})
    means = {}
    for s in refs:
        base = 100.0 * s  # agents differ a lot: only a paired design sees the lift
        means[(s, "none", 100, 0)] = base
        means[(s, "simple", 100, 5000)] = base + 10.0 + s  # lifts 11..16
        means[(s, "constrained", 100, 5000)] = base - 20.0 - s  # harm
        means[(s, "none", 0, 0)] = base
        means[(s, "simple", 0, 5000)] = base + [3, -4, 5, -2, 1, 50][s - 1]  # noise
    rows = study.study_rows(means, refs, "all")
    by = {(r["mode"], r["n_real"]): r for r in rows}
    lift = by[("simple", 100)]
    assert lift["agents"] == [1, 2, 3, 4, 5] and lift["k"] == 5  # seed 6 excluded
    assert lift["lift"] == pytest.approx(13.0) and lift["verdict"] == "lift"
    assert lift["frac_positive"] == 1.0
    assert lift["agent_lifts"] == {1: 11.0, 2: 12.0, 3: 13.0, 4: 14.0, 5: 15.0}
    harm = by[("constrained", 100)]
    assert harm["lift"] == pytest.approx(-23.0) and harm["verdict"] == "harm"
    noise = by[("simple", 0)]
    assert noise["verdict"] == "no detectable effect" and noise["mde"] > abs(noise["lift"])
    # Holm across this game's three cells
    raw = [r["p"] for r in rows]
    assert [r["p_holm"] for r in rows] == pytest.approx(study._holm(raw))
    # normalised: (x - 20) / 480 per agent; lift in normalised units for simple/100
    assert lift["lift_norm"] == pytest.approx(np.mean([(11 + s) / 480 for s in range(5)]))
    # the sanity subset drops the failing agent 5
    sane = {(r["mode"], r["n_real"]): r for r in study.study_rows(means, refs, "sanity")}
    assert sane[("simple", 100)]["agents"] == [1, 2, 3, 4]
    text = study.format_verdicts(rows + list(sane.values()), refs, "title")
    assert "all agents that beat random (5 of 6)" in text
    assert "agents whose sanity holds (4 of 6)" in text
    assert "seed    6" in text and "excluded" in text and "FAILS" in text
    assert "no detectable effect (MDE" in text


def test_primary_comparison_is_its_own_family_against_each_control():
    """A pre-registered comparison survives where the many-cell family would drown it: the
    same lift is 'lift' with Holm across its 2 controls and 'uncertain'-or-worse across 40."""
    refs = _refs(6, excluded={6})
    rng = np.random.default_rng(0)
    means = {}
    for s in refs:
        base = 100.0 * s
        means[(s, "none", 100, 0)] = base
        means[(s, "constrained:resample", 100, 5000)] = base + 1.0 + rng.normal(0, 1)
        means[(s, "constrained:cvae", 100, 5000)] = base + 6.0 + rng.normal(0, 2.5)
        for j in range(38):  # exploratory cells: noise
            means[(s, f"simple:k{j}", 100, 5000)] = base + rng.normal(0, 5)
    prim = study.primary_rows(means, refs, "constrained:cvae", ["none", "constrained:resample"],
                              100, 5000)
    assert [r["control"] for r in prim] == ["none", "constrained:resample"]
    vs_none, vs_res = prim
    assert vs_none["agents"] == [1, 2, 3, 4, 5]  # the excluded agent stays out
    want = [means[(s, "constrained:cvae", 100, 5000)] - means[(s, "none", 100, 0)]
            for s in range(1, 6)]
    assert vs_none["lift"] == pytest.approx(np.mean(want))
    want = [means[(s, "constrained:cvae", 100, 5000)] - means[(s, "constrained:resample", 100, 5000)]
            for s in range(1, 6)]
    assert vs_res["lift"] == pytest.approx(np.mean(want))
    assert [r["p_holm"] for r in prim] == pytest.approx(study._holm([r["p"] for r in prim]))
    assert vs_none["verdict"] == "lift"
    wide = {(r["mode"]): r for r in study.study_rows(means, refs, "all")}
    assert wide["constrained:cvae"]["p_holm"] > vs_none["p_holm"]
    text = study.format_primary(prim)
    assert text.startswith("PRIMARY (pre-registered in the profile): constrained:cvae at n_real 100")
    assert "vs constrained:resample" in text and "Holm across its 2 control(s) only" in text


def test_primary_settings_are_checked_against_the_grid():
    from rlpad.config import ConfigError, load_config, primary_cell, primary_missing

    cfg = load_config("quick", ['eval.modes=["none","constrained:cvae","constrained:resample"]',
                                'study.primary=constrained:cvae',
                                'study.primary_controls=["none","constrained:resample"]'])
    assert primary_cell(cfg) == (100, 5000)  # the smallest n_real above 0, the largest n_fake
    for bad, key in ((['study.primary=none'], "study.primary"),
                     (['study.primary=simple:vae'], "study.primary"),
                     (['study.primary=constrained', 'study.primary_controls=["constrained"]'],
                      "study.primary_controls")):
        with pytest.raises(ConfigError, match=f"key '{key}'"):
            load_config("quick", bad)
    # a grid overridden without the primary's modes or cells runs, and says why it is untested
    assert primary_missing(cfg) == ""
    for sets, why in ((['eval.modes=["none","simple"]'], "lacks constrained"),
                      (['study.primary_n_real=300'], "study.primary_n_real 300 is not in"),
                      (['eval.n_fake=[0]'], "has no n_fake above 0")):
        assert why in primary_missing(load_config("quick", sets))
