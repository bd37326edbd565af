"""A grid / study page: stage 4's table with CIs and verdicts, score vs n_real per mode and
generator kind, each agent's lift per cell, sanity per agent; filters on every axis."""
from __future__ import annotations

from html import escape

from dash import dcc, html

from . import figures
from .components import Raw, damaged, graph, note, table
from .data import Damaged, StoreView, fnum
from ..modes import parse_mode
from ..study import SANITY_RECOVERY


def _access_kind(mode: str, default_kind: str) -> tuple[str, str]:
    try:
        access, kind = parse_mode(mode, default_kind)
    except ValueError:
        return mode, "?"
    return access, kind or "—"


def load(view: StoreView, run: str) -> dict | Damaged:
    """The study's parsed files (verified), or what is wrong."""
    if run not in view.runs():
        return Damaged(f"no run {run!r} in {view.uri}")
    rv = view.run_view(run)
    ev = rv.eval
    if ev is None or ev.state != "done":
        return Damaged(f"stage 4 of {run!r} is {ev.state if ev else 'absent'}"
                       + (f": {ev.problem}" if ev and ev.problem else ""))
    study = view.file(run, ev, "study.json", "json")
    summary = view.file(run, ev, "summary.json", "json")
    for v in (study, summary):
        if isinstance(v, Damaged):
            return v
    cfg = ev.manifest.get("config", {})
    kind = cfg.get("gan", {}).get("variant", "?")
    # the trial-level rows carry the n_real a trial used; one above every configured size is
    # "all real data" (n_real 0 in the profile), as the cells call it
    sizes = {int(n) for n in cfg.get("eval", {}).get("n_real", []) if int(n) > 0}
    rows = [{**r, "n_real": int(r["n_real"]) if int(r["n_real"]) in sizes else 0}
            for r in summary.get("summary", [])]
    return {"rv": rv, "study": study, "summary": rows, "kind": kind, "metrics": ev.metrics}


def _options(d: dict) -> dict[str, list]:
    modes, kinds, nreal = set(), set(), set()
    for r in d["summary"]:
        a, k = _access_kind(str(r["mode"]), d["kind"])
        modes.add(a)
        kinds.add(k)
        nreal.add(int(r["n_real"]))
    games = sorted({g for c in d["study"].get("cells", []) for g in c.get("games", [])}
                   | {d["study"].get("game", "?")})
    return {"mode": sorted(modes), "kind": sorted(kinds),
            "n_real": sorted(nreal, key=lambda n: (n == 0, n)), "game": games}


def _dropdown(id: str, label: str, options: list, multi: bool = True, value=None) -> html.Div:
    opts = [{"label": "all" if (id == "study-nreal" and o == 0) else str(o), "value": o}
            for o in options]
    return html.Div([html.Label(label), dcc.Dropdown(id=id, options=opts, multi=multi,
                                                     value=value, placeholder="all",
                                                     style={"width": "230px"})])


def layout(view: StoreView, run: str) -> html.Div:
    d = load(view, run)
    if isinstance(d, Damaged):
        return html.Div([html.H2(f"Study {run}"), damaged(d.reason)])
    o = _options(d)
    filters = html.Div([
        _dropdown("study-game", "game", o["game"]), _dropdown("study-mode", "access mode", o["mode"]),
        _dropdown("study-kind", "generator kind", o["kind"]),
        _dropdown("study-nreal", "n_real", o["n_real"]),
        _dropdown("study-subset", "agents", ["all", "sanity"], multi=False, value="all")],
        style={"display": "flex", "gap": "14px", "flexWrap": "wrap"})
    m = d["metrics"]
    return html.Div([
        html.H2(f"Study {run}", id="study-title"),
        note(f"{d['study'].get('game', '?')} · {m.get('n_agents', 1)} agent(s) · "
             f"{m.get('n_trials', 0):,} trials · {m.get('dataset', '?')} · sanity holds for "
             f"{len(m.get('sanity_holds_agents', []))} of {m.get('n_agents', 1)}"),
        dcc.Link(f"← run {run}", href=f"/run/{run}"), filters,
        html.Div(body(view, run, {}), id="study-body")])


def _keep(r: dict, f: dict, default_kind: str) -> bool:
    access, kind = _access_kind(str(r["mode"]), default_kind)
    if f.get("mode") and access not in f["mode"]:
        return False
    if f.get("kind") and kind not in f["kind"] and access != "none":
        return False
    if f.get("n_real") and int(r["n_real"]) not in f["n_real"]:
        return False
    if f.get("game") and r.get("games") is not None and not set(r["games"]) & set(f["game"]):
        return False
    return True


def body(view: StoreView, run: str, f: dict) -> html.Div:
    d = load(view, run)
    if isinstance(d, Damaged):
        return html.Div(damaged(d.reason))
    subset = f.get("subset") or "all"
    cells = [c for c in d["study"].get("cells", [])
             if c.get("subset", "all") == subset and _keep(c, f, d["kind"])]
    summary = [r for r in d["summary"] if _keep(r, f, d["kind"])]
    rows = []
    for c in cells:
        access, kind = _access_kind(str(c["mode"]), d["kind"])
        rows.append([access, kind, "all" if int(c["n_real"]) == 0 else f"{int(c['n_real']):,}",
                     f"{int(c['n_fake']):,}", str(c.get("k", "—")),
                     f"{fnum(c.get('lift'))} [{fnum(c.get('lift_lo'))}, {fnum(c.get('lift_hi'))}]",
                     fnum(c.get("p_holm"), ".3g"),
                     f"{fnum(c.get('iqm'), '.2f')} vs {fnum(c.get('iqm_control'), '.2f')}",
                     fnum(c.get("prob_improvement"), ".2f"), fnum(c.get("mde")),
                     Raw(f'<b class="verdict">{escape(str(c.get("verdict", "—")))}</b>')])
    trows = [[str(r["mode"]), "all" if int(r["n_real"]) == 0 else f"{int(r['n_real']):,}",
              f"{int(r['n_fake']):,}", str(r.get("n_trials", "—")),
              f"{fnum(r.get('mean'))} [{fnum(r.get('ci_lo'))}, {fnum(r.get('ci_hi'))}]",
              f"{fnum(r.get('win_rate'), '.2f')} [{fnum(r.get('win_lo'), '.2f')}, "
              f"{fnum(r.get('win_hi'), '.2f')}]", fnum(r.get("lift"))] for r in summary]
    refs = d["metrics"].get("refs", {})
    parts = [html.H3(f"Verdicts per padded cell (agents: {subset})"),
             table(["mode", "kind", "n_real", "n_fake", "agents", "lift [95 % CI]", "p (Holm)",
                    "IQM normalised vs control", "P(improvement)", "MDE", "verdict"], rows,
                   id="verdict-table") if rows else note("no padded cells for these filters "
                                                         "(a single agent has no agent-level "
                                                         "verdicts: see the cells below)"),
             html.H3("Score per cell (trial-level, pooled over agents)"),
             table(["mode", "n_real", "n_fake", "trials", "score [95 % CI]", "win rate [CI]",
                    "lift"], trows, id="cells-table"),
             graph(figures.score_vs_nreal(summary, "score vs n_real per mode (95 % CI bands)"),
                   "score-plot")]
    if cells:
        parts.append(graph(figures.lifts(cells, "lift per cell: each agent a dot"), "lift-plot"))
    if refs:
        parts.append(graph(figures.sanity(refs, SANITY_RECOVERY, "sanity per agent: the refit on "
                                          "all real data"), "sanity-plot"))
    return html.Div(parts)
