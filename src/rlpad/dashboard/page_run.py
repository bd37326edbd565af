"""A run's page: every agent's stages and learning curves, scores, the cut check, generator
quality per kind, feature histograms and the videos `rlpad play` wrote."""
from __future__ import annotations

from dash import dcc, html

from . import figures
from .components import damaged, graph, media_url, note, stage_cell, table
from .data import Damaged, RunView, StoreView, fnum


def _label(agent: int | None) -> str:
    return "agent" if agent is None else f"agent {agent}"


def _num_rows(rows: list[dict]) -> list[dict]:
    out = []
    for r in rows:
        d = {}
        for k, v in r.items():
            try:
                d[k] = float(v)
            except (TypeError, ValueError):
                d[k] = v
        out.append(d)
    return out


def curves_of(view: StoreView, rv: RunView) -> tuple[dict[str, list[dict]], list]:
    """Each agent's learning curve (finished: curve.csv; running: its newest checkpoint) and
    the damage notes of those that could not be read."""
    out, notes = {}, []
    for a in rv.agents:
        v = rv.stage(a, "1-fit")
        if v is None:
            continue
        if v.state == "done":
            rows = view.file(rv.name, v, "curve.csv", "csv")
            if isinstance(rows, Damaged):
                notes.append(damaged(rows.reason))
                continue
            out[_label(a)] = _num_rows(rows)
        elif v.state == "damaged":
            notes.append(damaged(v.problem or f"{v.path} is damaged"))
        else:
            live = view.live_curve(rv.name, v)
            if live:
                out[f"{_label(a)} (live, {v.state})"] = live
    return out, notes


def _stage_table(rv: RunView) -> html.Table:
    names = sorted({s for (_, s) in rv.stages}, key=lambda s: (not s[0].isdigit(), s))
    rows = [[_label(a), *[stage_cell(rv.stage(a, s)) for s in names]] for a in rv.agents]
    if rv.eval is not None:
        rows.append(["study (all agents)", stage_cell(rv.eval), *[""] * (len(names) - 1)])
    return table(["", *names], rows, id="stage-table",
                 row_ids=[str(a) for a in rv.agents] + (["4-eval"] if rv.eval else []))


def _scores(rv: RunView) -> html.Table:
    refs = rv.eval.metrics.get("refs", {}) if rv.eval and rv.eval.manifest else {}
    rows = []
    for a in rv.agents:
        m = (rv.stage(a, "1-fit") or None)
        m = m.metrics if m else {}
        ref = refs.get(str(a if a is not None else next(iter(refs), "")), {})
        rows.append([_label(a), fnum(m.get("eval_return_mean")), fnum(m.get("random_return_mean")),
                     fnum(ref.get("agent")), fnum(ref.get("random")),
                     fnum(ref.get("sanity_normalised"), ".2f"),
                     {True: "holds", False: "FAILS"}.get(ref.get("sanity_holds"), "—")])
    return table(["", "stage-1 eval return", "random (stage 1)", "agent (sanity episodes)",
                  "random (sanity episodes)", "refit normalised", "sanity"], rows, id="scores-table")


def _cut(rv: RunView) -> html.Table:
    rows = []
    for a in rv.agents:
        v = rv.stage(a, "2-transform")
        m = v.metrics if v else {}
        rows.append([_label(a), fnum(m.get("cut_check_max_abs_diff"), ".2e"),
                     fnum(m.get("cut_check_samples"), ",.0f"), fnum(m.get("n_transitions"), ",.0f"),
                     str(m.get("dataset_kind", "—")), fnum(m.get("feature_dim"), ".0f"),
                     f"{m.get('classes_present', '—')}/{m.get('n_classes', '—')}"])
    return table(["", "cut check max |Δq|", "samples", "transitions", "dataset", "features",
                  "classes present"], rows, id="cut-table")


def _per_class(pc: dict) -> str:
    bits = []
    for c in sorted(pc, key=lambda k: int(k) if str(k).isdigit() else 0):
        acc = pc[c].get("c2st_accuracy") if isinstance(pc[c], dict) else pc[c]
        if acc is not None:
            bits.append(f"{c}: {fnum(acc, '.2f')}")
    return ", ".join(bits) or "—"


def _generators(rv: RunView) -> html.Table:
    rows = []
    for a in rv.agents:
        for (aa, s), v in sorted(rv.stages.items(), key=lambda kv: str(kv[0][1])):
            if aa != a or not s.startswith("3-fit-gan"):
                continue
            m = v.metrics
            rows.append([_label(a), m.get("variant", s.replace("3-fit-gan-", "") or "?"),
                         fnum(m.get("c2st_accuracy"), ".3f"), fnum(m.get("fd_real_fake"), ".3g"),
                         fnum(m.get("fd_real_real"), ".3g"), fnum(m.get("fd_ratio"), ".2f"),
                         fnum(m.get("memorisation_ratio"), ".2f"), fnum(m.get("restarts"), ".0f"),
                         _per_class(m.get("per_class", {}))])
    return table(["", "kind", "C2ST", "Fréchet real-fake", "Fréchet real-real (floor)",
                  "ratio", "memorisation", "restarts", "C2ST per class"], rows, id="gen-table")


def _images(view: StoreView, rv: RunView, stage: str, name: str, what: str) -> list:
    out = []
    for a in rv.agents:
        v = rv.stage(a, stage)
        if v is None or v.state != "done":
            continue
        if name not in v.manifest.get("files", {}):
            continue
        out.append(html.Figure([html.Img(src=media_url(rv.name, v.path, name),
                                         style={"maxWidth": "520px"}, className=what),
                                html.Figcaption(f"{_label(a)}: {stage}/{name}")],
                               style={"display": "inline-block", "margin": "4px"}))
    return out


def _videos(view: StoreView, rv: RunView) -> list:
    out = []
    for a in rv.agents:
        v = rv.stage(a, "play")
        if v is None or v.state != "done":
            continue
        for ep in v.metrics.get("episodes", []):
            out.append(html.Figure([html.Img(src=media_url(rv.name, v.path, ep["file"]),
                                             className="video", style={"maxWidth": "320px"}),
                                    html.Figcaption(f"{_label(a)} episode {ep['episode']}: score "
                                                    f"{fnum(ep['score'], 'g')} in {ep['steps']} steps")],
                                   style={"display": "inline-block", "margin": "4px"}))
    return out


def layout(view: StoreView, run: str) -> html.Div:
    if run not in view.runs():
        return html.Div([html.H2(f"Run {run}"), damaged(f"no run {run!r} in {view.uri}")])
    rv = view.run_view(run)
    curves, notes = curves_of(view, rv)
    loss_keys = sorted({k for rows in curves.values() for r in rows[:1] for k in r if "loss" in k})
    cfg = rv.first_config()
    head = [html.H2(f"Run {run}", id="run-title"),
            note(f"{rv.game} · learner {rv.learner} · {cfg.get('description', '')} · "
                 f"{'1 agent' if rv.agents == [None] else f'{len(rv.agents)} agents'}"),
            dcc.Link("→ the study page (stage 4)", href=f"/study/{run}")
            if rv.eval and rv.eval.manifest else note("stage 4 not done yet")]
    parts = [html.H3("Stages"), _stage_table(rv),
             html.H3("Learning curves"), *notes]
    if curves:
        parts.append(graph(figures.curves(curves, "eval_return_mean", "greedy evaluation return "
                                          "(solid) and training return (dashed)", "episode return",
                                          train_key="train_return"), "curve-plot"))
        for k in loss_keys:
            parts.append(graph(figures.curves(curves, k, k, k), f"loss-plot-{k}"))
    else:
        parts.append(note("no learning curve yet"))
    parts += [html.H3("Scores"), _scores(rv), html.H3("Cut check (stage 2)"), _cut(rv),
              html.H3("Generator quality (stage 3, held-out real rows)"), _generators(rv),
              note("C2ST: a classifier's accuracy telling generated from real (0.5 = "
                   "indistinguishable); Fréchet distance against its real-vs-real floor; "
                   "memorisation: distance to the nearest training row over the same for new "
                   "real rows (≈1: no copying)"),
              html.H3("Feature histograms (real vs generated)"),
              *(_images(view, rv, "3-fit-gan", "histograms.png", "hist") or [note("none yet")]),
              html.H3("Agent videos (rlpad play)"),
              *(_videos(view, rv) or [note("no videos: run `rlpad play`")])]
    return html.Div(head + parts)
