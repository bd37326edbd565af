"""Tests for rlpad.stats: known values computed independently, plus summarize/table/plot/json."""
from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
from scipy import stats as sps

from rlpad.stats import (compare, format_table, holm, mean_ci, plot_summary, summarize,
                         to_jsonable, wilson_interval)

X = np.array([3.1, 4.7, 2.2, 5.9, 4.4, 3.8, 6.1, 2.9])


def test_mean_ci_matches_scipy_t_interval():
    m, lo, hi = mean_ci(X)
    elo, ehi = sps.t.interval(0.95, len(X) - 1, loc=X.mean(), scale=sps.sem(X))
    assert m == pytest.approx(X.mean())
    assert (lo, hi) == pytest.approx((elo, ehi), rel=1e-12)
    _, lo90, hi90 = mean_ci(X, level=0.90)
    assert lo < lo90 < m < hi90 < hi  # a lower level gives a narrower interval


def test_mean_ci_degenerate():
    m, lo, hi = mean_ci([7.5])
    assert m == 7.5 and math.isnan(lo) and math.isnan(hi)
    assert all(math.isnan(v) for v in mean_ci([]))


def test_wilson_hand_worked():
    rate, lo, hi = wilson_interval(8, 10)
    assert rate == 0.8
    assert lo == pytest.approx(0.4902, abs=1e-4) and hi == pytest.approx(0.9433, abs=1e-4)
    # Edges stay inside [0, 1] and are non-trivial, unlike the Wald interval.
    r0, lo0, hi0 = wilson_interval(0, 20)
    assert r0 == 0 and lo0 == 0 and 0.1 < hi0 < 0.2
    assert all(math.isnan(v) for v in wilson_interval(0, 0))


def test_compare_matches_welch_and_mannwhitney():
    a = np.array([5.0, 6.5, 7.1, 5.9, 8.2, 6.6])
    b = np.array([4.1, 5.0, 3.3, 4.8, 5.5, 4.0, 3.9, 4.6])
    r = compare(a, b)
    ref = sps.ttest_ind(a, b, equal_var=False)
    assert r["lift"] == pytest.approx(a.mean() - b.mean())
    assert r["t"] == pytest.approx(ref.statistic) and r["p_welch"] == pytest.approx(ref.pvalue)
    assert r["p_mannwhitney"] == pytest.approx(sps.mannwhitneyu(a, b, alternative="two-sided").pvalue)
    # Welch CI worked independently: se and Welch-Satterthwaite df.
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    df = (va + vb) ** 2 / (va ** 2 / (a.size - 1) + vb ** 2 / (b.size - 1))
    half = sps.t.ppf(0.975, df) * math.sqrt(va + vb)
    assert r["df"] == pytest.approx(df)
    assert (r["lift_lo"], r["lift_hi"]) == pytest.approx((r["lift"] - half, r["lift"] + half))
    # The CI excludes 0 exactly when the Welch p < 0.05.
    assert (r["lift_lo"] > 0) == (r["p_welch"] < 0.05)


def test_compare_degenerate_is_nan_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning fails the test
        one = compare([3.0], [1.0, 2.0, 4.0])
        flat = compare([2.0, 2.0, 2.0], [2.0, 2.0])
        empty = compare([], [1.0, 2.0])
    assert one["lift"] == pytest.approx(3.0 - 7.0 / 3.0)
    assert math.isnan(one["p_welch"]) and math.isnan(one["lift_lo"])
    assert flat["lift"] == 0 and math.isnan(flat["p_welch"]) and math.isnan(flat["p_mannwhitney"])
    assert math.isnan(empty["lift"])


def test_holm_known_vector_and_nan():
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    out = holm([0.2, float("nan"), 0.5, 0.001])
    assert math.isnan(out[1])
    assert out[0] == pytest.approx(0.4) and out[2] == pytest.approx(0.5) and out[3] == pytest.approx(0.003)
    assert holm([0.6, 0.7]) == [1.0, 1.0]  # capped at 1
    assert holm([]) == []


def _grid() -> list[dict]:
    """Two n_real levels; n_real=100 has 3 trials per cell, n_real=1000 'simple' has one trial."""
    rows = []
    spec = {  # (mode, n_real, n_fake) -> per-trial episode scores
        ("constrained", 100, 50): [[30, 40], [50, 60], [70, 80]],
        ("none", 100, 0): [[10, 20], [20, 30], [30, 40]],
        ("simple", 100, 50): [[20, 30], [30, 40], [40, 50]],
        ("none", 1000, 0): [[100, 200], [300, 400]],
        ("simple", 1000, 50): [[500, 10, 500, 10]],
    }
    for (mode, r, f), trials in spec.items():
        for rep, scores in enumerate(trials):
            for ep, s in enumerate(scores):
                rows.append({"trial_id": f"{mode}-{r}-{f}-{rep}", "mode": mode, "n_real": r,
                             "n_fake": f, "rep": rep, "episode": ep, "score": float(s)})
    return rows


def _cell(summary, mode, r, f):
    (row,) = [s for s in summary if (s["mode"], s["n_real"], s["n_fake"]) == (mode, r, f)]
    return row


def test_summarize_units_control_sorting_and_win_rates():
    summary = summarize(_grid(), win_threshold=40)
    order = [(s["n_real"], s["mode"], s["n_fake"]) for s in summary]
    assert order == [(100, "none", 0), (100, "simple", 50), (100, "constrained", 50),
                     (1000, "none", 0), (1000, "simple", 50)]

    ctrl = _cell(summary, "none", 100, 0)
    assert ctrl["unit"] == "trial" and ctrl["n_trials"] == 3 and ctrl["n_episodes"] == 6
    assert all(ctrl[k] is None for k in ("lift", "p_welch", "p_holm"))
    # Trial means are 15, 25, 35: the CI uses n=3 trials, not the 6 episodes.
    assert (ctrl["mean"], ctrl["ci_lo"], ctrl["ci_hi"]) == pytest.approx(mean_ci([15, 25, 35]))
    assert ctrl["median"] == 25.0
    assert ctrl["win_rate"] == pytest.approx(1 / 6)  # one episode (40) reaches the threshold
    assert (ctrl["win_lo"], ctrl["win_hi"]) == pytest.approx(wilson_interval(1, 6)[1:])

    simple = _cell(summary, "simple", 100, 50)
    assert simple["control_mode"] == "none" and simple["lift_unit"] == "trial"
    ref = compare([25, 35, 45], [15, 25, 35])
    assert simple["lift"] == pytest.approx(10.0) and simple["p_welch"] == pytest.approx(ref["p_welch"])

    # One-trial cell falls back to episodes, and so does its lift test.
    lone = _cell(summary, "simple", 1000, 50)
    assert lone["unit"] == "episode" and lone["n_trials"] == 1 and lone["n_episodes"] == 4
    assert (lone["mean"], lone["ci_lo"]) == pytest.approx(mean_ci([500, 10, 500, 10])[:2])
    assert lone["lift_unit"] == "episode"
    assert lone["p_welch"] == pytest.approx(compare([500, 10, 500, 10], [100, 200, 300, 400])["p_welch"])
    assert lone["win_rate"] == 0.5

    # Holm over the three lift tests, on p (Welch).
    tested = [s for s in summary if s["lift"] is not None]
    assert len(tested) == 3
    assert [s["p_holm"] for s in tested] == pytest.approx(holm([s["p_welch"] for s in tested]))


def test_summarize_control_fallback_when_no_none_mode():
    rows = [r for r in _grid() if not (r["mode"] == "none" and r["n_real"] == 100)]
    rows += [{**r, "mode": "simple", "n_fake": 0, "trial_id": "s0-" + r["trial_id"]}
             for r in _grid() if r["mode"] == "none" and r["n_real"] == 100]
    summary = summarize(rows, win_threshold=40)
    c = _cell(summary, "constrained", 100, 50)
    assert c["control_mode"] == "simple" and c["lift"] == pytest.approx(30.0)
    assert _cell(summary, "simple", 100, 0)["lift"] is None


def test_format_table_lists_every_cell_and_dashes_for_nan():
    summary = summarize(_grid(), win_threshold=40)
    lone = _cell(summary, "simple", 1000, 50)
    lone["p_mannwhitney"] = float("nan")  # force a nan to check the dash
    text = format_table(summary, title="quick grid")
    lines = text.splitlines()
    assert lines[0] == "quick grid" and "mean ± 95% CI" in lines[1]
    assert len(lines) == 1 + 2 + len(summary) + 1  # title, header, rule, cells, footnote
    for s, line in zip(summary, lines[3:]):
        assert line.split()[:3] == [s["mode"], str(s["n_real"]), str(s["n_fake"])]
    assert "—" in lines[3 + summary.index(lone)] and "1*" in lines[3 + summary.index(lone)]
    assert "trial" in lines[-1] and "Welch" in lines[-1] and "Mann-Whitney" in lines[-1]
    assert len({len(l) for l in lines[1:-1]}) == 1  # fixed width
    assert format_table(to_jsonable(summary)) == text.split("\n", 1)[1]  # works on JSON rows too


def test_plot_summary_writes_png(tmp_path):
    summary = summarize(_grid(), win_threshold=40)
    # Add an n_real == 0 ("all") control to exercise the right-end placement.
    summary += summarize([{"trial_id": f"all-{i}", "mode": "none", "n_real": 0, "n_fake": 0,
                           "rep": i, "episode": 0, "score": 450.0 + i} for i in range(3)], 40)
    out = tmp_path / "sub" / "summary.png"
    plot_summary(summary, out, title="test")
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000


def test_to_jsonable_strict_json():
    one_episode = {"trial_id": "x", "mode": "simple", "n_real": 10, "n_fake": 5, "rep": 0,
                   "episode": 0, "score": 1.0}
    summary = summarize(_grid() + [one_episode], win_threshold=40)
    assert math.isnan(_cell(summary, "simple", 10, 5)["ci_lo"])  # one episode: no interval
    with pytest.raises(ValueError):
        json.dumps(summary, allow_nan=False)
    back = json.loads(json.dumps(to_jsonable(summary), allow_nan=False))
    assert len(back) == len(summary)
    assert back[0]["mean"] == pytest.approx(summary[0]["mean"])
    assert to_jsonable({"a": [np.float64("nan"), np.int64(3)]}) == {"a": [None, 3]}
