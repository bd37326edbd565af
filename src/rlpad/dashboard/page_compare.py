"""Compare: two or more runs side by side on the same axes (learning curves, scores per cell,
key numbers)."""
from __future__ import annotations

from dash import dcc, html

from . import figures
from .components import damaged, graph, note, run_link, table
from .data import Damaged, StoreView, fnum
from .page_run import curves_of
from .page_runs import key_metrics, stage_states
from .page_study import load


def layout(view: StoreView, runs: list[str]) -> html.Div:
    return html.Div([
        html.H2("Compare runs"),
        dcc.Dropdown(id="compare-runs", options=view.runs(), value=runs, multi=True,
                     placeholder="choose two or more runs", style={"width": "640px"}),
        html.Div(body(view, runs), id="compare-body")])


def body(view: StoreView, runs: list[str]) -> html.Div:
    runs = [r for r in runs or [] if r]
    if len(runs) < 2:
        return html.Div(note("choose two or more runs"))
    known = set(view.runs())
    parts, curves, summaries, rows = [], {}, {}, []
    for run in runs:
        if run not in known:
            parts.append(damaged(f"no run {run!r} in {view.uri}"))
            continue
        rv = view.run_view(run)
        c, notes = curves_of(view, rv)
        parts.extend(notes)
        for label, rows_ in c.items():
            curves[f"{run} {label}"] = rows_
        d = load(view, run)
        if not isinstance(d, Damaged):
            summaries[run] = d["summary"]
        st, km = stage_states(rv), key_metrics(rv)
        rows.append([run_link(run), rv.game, rv.learner, str(len(rv.agents)),
                     *[f"{st[s]}; {km[s]}" for s in ("1-fit", "3-fit-gan", "4-eval")],
                     fnum(sum(v.wall_s or 0 for v in rv.stages.values()), ",.0f")])
    parts.insert(0, table(["run", "game", "learner", "agents", "1-fit", "3-fit-gan", "4-eval",
                           "wall s (stages 1-3)"], rows, id="compare-table"))
    if curves:
        parts.append(graph(figures.compare_curves(curves, "greedy evaluation return, every agent "
                                                  "of every run"), "compare-curves"))
    if summaries:
        parts.append(graph(figures.compare_scores(summaries, "score vs n_real, run by run"),
                           "compare-scores"))
    return html.Div(parts)
