"""Small building blocks shared by the pages: state badges, tables, notes of damage."""
from __future__ import annotations

import re
from html import escape
from urllib.parse import quote

from dash import dcc, html

from .data import Damaged, StageView, fnum

STATE_COLORS = {"done": "#2ca02c", "running": "#1f77b4", "stalled": "#ff7f0e",
                "failed": "#d62728", "damaged": "#8c564b", "absent": "#999999"}

TABLE = {"borderCollapse": "collapse", "fontSize": "13px", "margin": "6px 0 14px 0"}
CELL = {"border": "1px solid #ddd", "padding": "3px 8px", "textAlign": "right",
        "whiteSpace": "nowrap"}
HEAD = {**CELL, "background": "#f4f4f4", "textAlign": "center"}


class Raw(str):
    """A table cell that is already HTML (escaped where it holds text)."""


def _cell(c) -> str:
    return c if isinstance(c, Raw) else escape(str(c))


def _css(style: dict) -> str:
    return ";".join(f"{re.sub('([A-Z])', lambda m: '-' + m.group(1).lower(), k)}:{v}"
                    for k, v in style.items())


def badge(state: str, title: str = "") -> Raw:
    style = _css({"background": STATE_COLORS.get(state, "#999"), "color": "white",
                  "borderRadius": "4px", "padding": "1px 6px", "fontSize": "12px"})
    return Raw(f'<span class="state state-{escape(state)}" title="{escape(title)}" '
               f'style="{style}">{escape(state)}</span>')


def link(text: str, href: str, cls: str = "") -> Raw:
    return Raw(f'<a href="{escape(href)}" class="{cls}">{escape(text)}</a>')


def table(header: list, rows: list[list], id: str | None = None, row_ids: list[str] | None = None
          ) -> html.Div:
    """One HTML table as a single component: a page of 200 runs is then one node for the
    Dash renderer, not thousands (which took it over a minute to lay out)."""
    head = "".join(f'<th style="{_css(HEAD)}">{_cell(h)}</th>' for h in header)
    body = []
    for i, r in enumerate(rows):
        key = f' data-key="{escape(row_ids[i])}"' if row_ids else ""
        body.append(f"<tr{key}>" + "".join(f'<td style="{_css(CELL)}">{_cell(c)}</td>' for c in r)
                    + "</tr>")
    ident = f' id="{escape(id)}"' if id else ""
    doc = (f'<table{ident} style="{_css(TABLE)}"><thead><tr>{head}</tr></thead><tbody>'
           + "".join(body) + "</tbody></table>")
    return html.Div(dcc.Markdown(doc, dangerously_allow_html=True), className="table-wrap",
                    style={"overflowX": "auto"})


def damaged(reason: str) -> html.Div:
    return html.Div(f"damaged: {reason}", className="damaged",
                    style={"color": STATE_COLORS["damaged"], "border": "1px solid #c9a89a",
                           "background": "#fbf3ef", "padding": "4px 8px", "margin": "4px 0"})


def note(text: str) -> html.P:
    return html.P(text, style={"color": "#666", "fontSize": "13px", "margin": "2px 0 8px"})


def graph(fig, id: str) -> dcc.Graph:
    return dcc.Graph(id=id, figure=fig, config={"displaylogo": False}, className="plot")


def run_link(run: str) -> Raw:
    return link(run, f"/run/{quote(run)}", "run-link")


def media_url(run: str, stage_path: str, name: str) -> str:
    return f"/media/{quote(run)}/{quote(stage_path)}/{quote(name)}"


def stage_cell(v: StageView | None) -> Raw | str:
    if v is None:
        return "—"
    bits = [badge(v.state, v.problem or "")]
    if v.progress and v.state in ("running", "stalled"):
        p = v.progress
        pct = 100 * p["done"] / max(p["total"], 1)
        eta = f", ETA {p['eta_s']:.0f} s" if p.get("eta_s") is not None else ""
        bits.append(f'<span class="progress"> {p["done"]:,}/{p["total"]:,} {escape(p["unit"])} '
                    f'({pct:.0f} %), {p["rate"]:.3g}/s{eta}</span>')
    if v.checkpoint_step is not None and v.state != "done":
        bits.append(f"<span> · checkpoint {v.checkpoint_step:,}</span>")
    if v.problem:
        bits.append(f'<div class="problem" style="color:{STATE_COLORS.get(v.state, "#333")};'
                    f'font-size:12px">{escape(v.problem)}</div>')
    if v.wall_s is not None:
        bits.append(f'<span style="color:#777"> {fnum(v.wall_s, ".0f")} s</span>')
    return Raw("".join(bits))


def value_or_damage(value, render):
    """render(value), or the damage note when the value could not be read."""
    if isinstance(value, Damaged):
        return damaged(value.reason)
    return render(value)
