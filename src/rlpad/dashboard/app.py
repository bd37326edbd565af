"""The Dash app: routes, live polling, and the media route for the store's images and videos.

One poll callback computes a signature of what the current page shows (states, manifests,
heartbeats, checkpoints) every `poll_s`; the page redraws only when it changes, so a finished
run's page stays still (and its plots keep their zoom) while a running one follows its stage.
"""
from __future__ import annotations

import hashlib
import mimetypes
import re
import time
from urllib.parse import parse_qs, unquote

import dash
from dash import Input, Output, State, dcc, html
from flask import Response, request

from . import page_compare, page_run, page_runs, page_study, plotly_bundle
from .components import damaged
from .data import Damaged, StoreView

NAV = html.Div([dcc.Link("runs", href="/"), html.Span(" · "), dcc.Link("compare", href="/compare")],
               style={"marginBottom": "6px"})


def _route(path: str) -> tuple[str, str]:
    parts = [unquote(p) for p in (path or "/").strip("/").split("/", 1)]
    if parts[0] in ("run", "study") and len(parts) == 2:
        return parts[0], parts[1]
    if parts[0] == "compare":
        return "compare", ""
    return ("runs", "") if parts[0] == "" else ("missing", path)


def _signature(view: StoreView, path: str, search: str) -> str:
    page, arg = _route(path)
    if page in ("run", "study"):
        sig = view.run_view(arg).signature() if arg in view.runs() else "none"
    elif page == "compare":
        runs = parse_qs((search or "").lstrip("?")).get("runs", [""])[0].split(",")
        sig = "|".join(view.run_view(r).signature() for r in runs if r in view.runs())
    else:
        sig = "|".join(f"{r}:{view.run_view(r, refresh=False).signature()}" for r in view.runs())
    return hashlib.sha256(f"{path}?{search}#{sig}".encode()).hexdigest()[:16]


def render(view: StoreView, path: str, search: str):
    page, arg = _route(path)
    try:
        if page == "runs":
            return page_runs.layout(view)
        if page == "run":
            return page_run.layout(view, arg)
        if page == "study":
            return page_study.layout(view, arg)
        if page == "compare":
            runs = parse_qs((search or "").lstrip("?")).get("runs", [""])[0].split(",")
            return page_compare.layout(view, [r for r in runs if r])
        return html.Div([html.H2("Not found"), damaged(f"no page {arg!r}")])
    except Exception as e:  # a bad run shows as such; the app goes on serving the others
        return html.Div([html.H2("This page could not be drawn"),
                         damaged(f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")])


def create_app(view: StoreView, poll_s: float = 5.0, plotly_js: bytes | None = None) -> dash.Dash:
    """plotly_js: the plotly.js build the graphs get instead of the plotly package's full one
    (plotly_bundle.load())."""
    app = dash.Dash(__name__, title="rlpad", suppress_callback_exceptions=True,
                    update_title=None)
    if plotly_js is not None:
        # where a Dash graph fetches plotly.js the first time a page draws one (dash-renderer's
        # _dashPlotlyJSURL; the fingerprinted form too)
        path = re.compile(re.escape(app.config.routes_pathname_prefix)
                          + r"_dash-component-suites/plotly/package_data/plotly(\.v[\w-]+)?\.min\.js")
        etag = hashlib.sha256(plotly_js).hexdigest()

        @app.server.before_request
        def smaller_plotly():
            if not path.fullmatch(request.path):
                return None
            # revalidated by its hash: the URL is Dash's own, shared by any app on this address
            resp = Response(plotly_js, mimetype="text/javascript",
                            headers={"Cache-Control": "no-cache"})
            resp.set_etag(etag)
            return resp.make_conditional(request)

    app.layout = html.Div([
        dcc.Location(id="url"), dcc.Interval(id="tick", interval=int(poll_s * 1000)),
        dcc.Store(id="sig"),
        html.H1("rlpad", style={"margin": "4px 0", "fontSize": "22px"}), NAV,
        html.Div(id="page", children=html.Div("loading…"))],
        style={"fontFamily": "sans-serif", "margin": "10px 18px"})

    @app.callback(Output("sig", "data"), Output("page", "children"),
                  Input("tick", "n_intervals"), Input("url", "pathname"), Input("url", "search"),
                  State("sig", "data"))
    def poll(_, path, search, old):
        """Redraw the page only when what it shows changed (or the address did)."""
        with view.snapshot():
            try:
                sig = _signature(view, path, search)
            except Exception as e:
                sig = f"error {type(e).__name__}"
            if sig == old:
                return dash.no_update, dash.no_update
            return sig, render(view, path, search)

    @app.callback(Output("runs-body", "children"), Input("runs-game", "value"),
                  prevent_initial_call=True)
    def runs_filter(game):
        with view.snapshot():
            return page_runs.body(view, game)

    @app.callback(Output("study-body", "children"),
                  [Input(i, "value") for i in ("study-game", "study-mode", "study-kind",
                                               "study-nreal", "study-subset")],
                  State("url", "pathname"), prevent_initial_call=True)
    def study_filter(game, mode, kind, n_real, subset, path):
        with view.snapshot():
            return page_study.body(view, _route(path)[1], {"game": game, "mode": mode,
                                                           "kind": kind, "n_real": n_real,
                                                           "subset": subset})

    @app.callback(Output("compare-body", "children"), Input("compare-runs", "value"),
                  prevent_initial_call=True)
    def compare_pick(runs):
        with view.snapshot():
            return page_compare.body(view, runs or [])

    @app.server.route("/media/<path:rel>")
    def media(rel: str):
        run, _, rest = unquote(rel).partition("/")
        stage, _, name = rest.rpartition("/")
        if run not in view.runs():
            return Response(f"no run {run!r}", status=404, mimetype="text/plain")
        v = view.stage_view(run, stage)
        data = view.file(run, v, name, "bytes")
        if isinstance(data, Damaged):
            return Response(f"damaged: {data.reason}", status=404, mimetype="text/plain")
        mime = mimetypes.guess_type(name)[0] or "application/octet-stream"
        return Response(data, mimetype=mime, headers={"Cache-Control": "max-age=60"})

    return app


def serve(store: str, host: str = "127.0.0.1", port: int = 8050, poll_s: float = 5.0,
          stall_after_s: float | None = None) -> None:
    view = StoreView(store, stall_after_s=stall_after_s)
    app = create_app(view, poll_s, plotly_bundle.load())
    t = time.time()
    try:
        with view.snapshot():  # the first visitor finds the runs' manifests parsed and verified
            render(view, "/", "")
            n = len(view.runs())
        print(f"rlpad dashboard: {n} runs read in {time.time() - t:.1f} s", flush=True)
    except Exception as e:  # the pages say what is wrong; serving goes on
        print(f"rlpad dashboard: reading the store first failed ({type(e).__name__}: {e})", flush=True)
    print(f"rlpad dashboard: {store} at http://{host}:{port}/ (read-only; Ctrl-C stops)",
          flush=True)
    app.run(host=host, port=port, debug=False)
