"""`rlpad dashboard`: a read-only web app over a store (Dash and Plotly, as rl-dash-days used).

data.py reads the store (verified, cached by content hash); page_*.py lay out one page each;
figures.py makes the plots; app.py routes and polls.
"""
from __future__ import annotations


def serve(*args, **kwargs) -> None:
    from .app import serve as _serve  # Dash loads only when the dashboard really starts

    _serve(*args, **kwargs)


__all__ = ["serve"]
