"""The runs page: every run of the store, its agents, stages and each stage's key metric."""
from __future__ import annotations

import statistics
from html import escape
from urllib.parse import quote

from dash import dcc, html

from .components import Raw, link, note, run_link, table
from .data import STAGE_ORDER, RunView, StoreView, fnum, summarize_states


def _mean(values: list) -> float | None:
    vals = [float(v) for v in values if isinstance(v, (int, float)) and v == v]
    return statistics.fmean(vals) if vals else None


def key_metrics(rv: RunView) -> dict[str, str]:
    """Each stage's headline, averaged over the run's agents."""
    def of(stage: str, key: str) -> list:
        return [v.metrics.get(key) for (a, s), v in rv.stages.items() if s == stage and v.manifest]

    out = {"1-fit": f"return {fnum(_mean(of('1-fit', 'eval_return_mean')))}",
           "2-transform": f"{fnum(_mean(of('2-transform', 'n_transitions')), ',.0f')} rows",
           "3-fit-gan": f"C2ST {fnum(_mean(of('3-fit-gan', 'c2st_accuracy')), '.3f')}",
           "4-eval": "—"}
    ev = rv.eval
    if ev is not None and ev.manifest:
        m = ev.metrics
        k = m.get("n_agents", 1)
        sane = len(m.get("sanity_holds_agents", []))
        prim = m.get("primary") or []
        out["4-eval"] = f"sanity {sane}/{k}" + (f"; primary: {prim[0]['verdict']}" if prim else "")
    return out


def stage_states(rv: RunView) -> dict[str, str]:
    out = {}
    for stage in STAGE_ORDER[:3]:
        out[stage] = summarize_states([v.state for (a, s), v in rv.stages.items() if s == stage])
    out["4-eval"] = summarize_states([rv.eval.state]) if rv.eval else "—"
    return out


def runs_rows(view: StoreView, game: str | None) -> tuple[list[list], list[str]]:
    rows, ids = [], []
    for run in view.runs():
        rv = view.run_view(run, refresh=False)
        if game and rv.game != game:
            continue
        states, metrics = stage_states(rv), key_metrics(rv)
        wall = sum(v.wall_s or 0 for v in rv.stages.values()) + ((rv.eval.wall_s or 0) if rv.eval else 0)
        cfg = rv.first_config()
        agents = "1" if rv.agents == [None] else f"{len(rv.agents)} (seeds {rv.agents[0]}-{rv.agents[-1]})"
        desc = cfg.get("description", "—")
        short = Raw(f'<span title="{escape(desc)}">{escape(desc[:40] + ("…" if len(desc) > 40 else ""))}</span>')
        rows.append([run_link(run), rv.game, rv.learner, short, agents,
                     *[Raw(f"<div>{escape(states[s])}</div><div class='metric'>"
                           f"{escape(metrics[s])}</div>") for s in STAGE_ORDER],
                     f"{wall:,.0f} s",
                     link("study", f"/study/{quote(run)}") if rv.eval and rv.eval.manifest else "—"])
        ids.append(run)
    return rows, ids


def layout(view: StoreView) -> html.Div:
    games = sorted({view.run_view(r, refresh=False).game for r in view.runs()})
    return html.Div([
        html.H2("Runs"),
        note(f"store {view.uri}; {len(view.runs())} runs; states come from each stage's status "
             "record and manifest (done = a manifest); read-only"),
        html.Div([html.Label("game "), dcc.Dropdown(id="runs-game", options=games, value=None,
                                                    placeholder="every game", clearable=True,
                                                    style={"width": "320px"})],
                 style={"display": "flex", "alignItems": "center", "gap": "8px"}),
        html.Div(body(view, None), id="runs-body"),
    ])


def body(view: StoreView, game: str | None) -> html.Div:
    rows, ids = runs_rows(view, game)
    header = ["run", "game", "learner", "profile", "agents", *STAGE_ORDER, "wall", ""]
    return html.Div([note(f"{len(rows)} runs shown"), table(header, rows, id="runs-table", row_ids=ids)])
