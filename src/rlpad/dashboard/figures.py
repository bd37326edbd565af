"""Plotly figures of the dashboard: plain functions from parsed rows to a figure."""
from __future__ import annotations

import plotly.graph_objects as go

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf")


def _f(x) -> float | None:
    try:
        x = float(x)
    except (TypeError, ValueError):
        return None
    return None if x != x else x


def _layout(fig: go.Figure, title: str, x: str, y: str) -> go.Figure:
    fig.update_layout(title=title, xaxis_title=x, yaxis_title=y, template="plotly_white",
                      margin=dict(l=50, r=20, t=50, b=45), height=360,
                      legend=dict(orientation="h", y=-0.2))
    return fig


def curves(curves_by_label: dict[str, list[dict]], key: str, title: str, y: str,
           train_key: str | None = None) -> go.Figure:
    """One line per agent (label) of `key` against agent steps; `train_key` dashed beside it."""
    fig = go.Figure()
    for i, (label, rows) in enumerate(curves_by_label.items()):
        color = PALETTE[i % len(PALETTE)]
        xs = [_f(r.get("step")) for r in rows]
        fig.add_trace(go.Scatter(x=xs, y=[_f(r.get(key)) for r in rows], mode="lines+markers",
                                 name=f"{label} {key}", line=dict(color=color)))
        if train_key and any(_f(r.get(train_key)) is not None for r in rows):
            fig.add_trace(go.Scatter(x=xs, y=[_f(r.get(train_key)) for r in rows], mode="lines",
                                     name=f"{label} {train_key}",
                                     line=dict(color=color, dash="dash")))
    return _layout(fig, title, "agent steps", y)


def _nreal_label(n: int) -> str:
    return "all" if int(n) == 0 else str(int(n))


def score_vs_nreal(summary: list[dict], title: str) -> go.Figure:
    """Mean score per n_real for each (mode, n_fake), with its 95 % CI as a band; n_real 0
    (all real data) last."""
    fig = go.Figure()
    groups: dict[tuple[str, int], list[dict]] = {}
    for r in summary:
        groups.setdefault((str(r["mode"]), int(r["n_fake"])), []).append(r)
    order = sorted({int(r["n_real"]) for r in summary}, key=lambda n: (n == 0, n))
    cats = [_nreal_label(n) for n in order]
    for i, ((mode, n_fake), rows) in enumerate(sorted(groups.items())):
        rows = sorted(rows, key=lambda r: (int(r["n_real"]) == 0, int(r["n_real"])))
        color = PALETTE[i % len(PALETTE)]
        xs = [_nreal_label(r["n_real"]) for r in rows]
        name = mode if mode == "none" else f"{mode} +{n_fake}"
        hi, lo = [_f(r.get("ci_hi")) for r in rows], [_f(r.get("ci_lo")) for r in rows]
        fig.add_trace(go.Scatter(x=xs + xs[::-1], y=hi + lo[::-1], fill="toself", opacity=0.18,
                                 line=dict(width=0), fillcolor=color, hoverinfo="skip",
                                 showlegend=False, name=f"{name} CI"))
        fig.add_trace(go.Scatter(x=xs, y=[_f(r.get("mean")) for r in rows], mode="lines+markers",
                                 name=name, line=dict(color=color)))
    fig.update_xaxes(categoryorder="array", categoryarray=cats, type="category")
    return _layout(fig, title, "n_real (all = every real transition)", "score (95 % CI)")


def lifts(cells: list[dict], title: str) -> go.Figure:
    """Per padded cell: each agent's lift as a dot, the agent-level mean with its 95 % CI."""
    fig = go.Figure()
    labels = [f"{c['mode']} n_real={_nreal_label(c['n_real'])} +{c['n_fake']}" for c in cells]
    xs, ys, names = [], [], []  # every agent's dot in one trace: 1,000 dots draw at once
    for label, c in zip(labels, cells):
        for s in sorted(c.get("agent_lifts", {}), key=lambda s: int(s)):
            xs.append(label)
            ys.append(_f(c["agent_lifts"][s]))
            names.append(f"agent {s}")
    fig.add_trace(go.Scatter(x=xs, y=ys, mode="markers", text=names, name="an agent's lift",
                             marker=dict(size=9, opacity=0.7, color="#1f77b4"),
                             hovertemplate="%{text}: lift %{y:.1f}<extra></extra>"))
    means = [_f(c.get("lift")) for c in cells]
    fig.add_trace(go.Scatter(
        x=labels, y=means, mode="markers", name="mean lift (95 % CI)",
        marker=dict(size=13, symbol="diamond", color="#d62728"),
        error_y=dict(type="data", symmetric=False,
                     array=[(_f(c.get("lift_hi")) or 0) - (m or 0) for c, m in zip(cells, means)],
                     arrayminus=[(m or 0) - (_f(c.get("lift_lo")) or 0)
                                 for c, m in zip(cells, means)])))
    fig.add_hline(y=0, line=dict(color="#888", dash="dot"))
    return _layout(fig, title, "cell", "lift over the control (score)")


def sanity(refs: dict[str, dict], threshold: float, title: str) -> go.Figure:
    seeds = sorted(refs, key=int)
    vals = [_f(refs[s].get("sanity_normalised")) for s in seeds]
    colors = ["#2ca02c" if refs[s].get("sanity_holds") else "#d62728" for s in seeds]
    fig = go.Figure(go.Bar(x=[f"agent {s}" for s in seeds], y=vals, marker_color=colors,
                           name="refit on all real data, normalised"))
    fig.add_hline(y=threshold, line=dict(color="#444", dash="dash"),
                  annotation_text=f"sanity bar {threshold}")
    return _layout(fig, title, "agent", "(refit - random) / (agent - random)")


def compare_curves(curves_by_run: dict[str, list[dict]], title: str) -> go.Figure:
    return curves(curves_by_run, "eval_return_mean", title, "greedy evaluation return")


def compare_scores(summaries: dict[str, list[dict]], title: str) -> go.Figure:
    fig = go.Figure()
    for i, (run, summary) in enumerate(summaries.items()):
        sub = score_vs_nreal(summary, "")
        for t in sub.data:
            t.name = f"{run}: {t.name}"
            if t.fill == "toself":
                t.fillcolor = PALETTE[i % len(PALETTE)]
            else:
                t.line.color = PALETTE[i % len(PALETTE)]
            fig.add_trace(t)
    fig.update_xaxes(type="category")
    return _layout(fig, title, "n_real (all = every real transition)", "score (95 % CI)")
